package api

import "testing"

func TestRedact(t *testing.T) {
	r, err := NewRedactor(true, []string{`db-?pw`})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"python3 /app/server.py --port 8000":              "python3 /app/server.py --port 8000",
		"app --password=hunter2 --user bob":               "app --password=*** --user bob",
		"app --password hunter2 --user bob":               "app --password *** --user bob",
		"app --token  abc":                                "app --token  ***",
		"app -token=abc":                                  "app -token=***",
		"env API_KEY=abc DB_PASSWORD=def HOME=/root":      "env API_KEY=*** DB_PASSWORD=*** HOME=/root",
		"app --client-secret=x --api-key y":               "app --client-secret=*** --api-key ***",
		"app --no-password --verbose":                     "app --no-password --verbose",
		"app --token-file /run/token":                     "app --token-file /run/token",
		"psql postgres://app:s3cret@db:5432/x":            "psql postgres://app:***@db:5432/x",
		"app --dsn=mysql://root:pw@tcp(h)/d":              "app --dsn=mysql://root:***@tcp(h)/d",
		"mysql -uroot -phunter2 db":                       "mysql -uroot -p*** db",
		"/usr/bin/mysqldump -pX --all":                    "/usr/bin/mysqldump -p*** --all",
		"grep -pattern file":                              "grep -pattern file",
		"sshpass -p hunter2 ssh host":                     "sshpass -p *** ssh host",
		"curl -H Authorization: Bearer abc.def https://x": "curl -H Authorization: Bearer *** https://x",
		"app --db-pw=x --dbpw y":                          "app --db-pw=*** --dbpw ***",
		"app --password":                                  "app --password",
		"app secret=":                                     "app secret=",
		"":                                                "",
	}
	for in, want := range tests {
		if got := r.Redact(in); got != want {
			t.Errorf("Redact(%q)\n  = %q\nwant %q", in, got, want)
		}
	}
	off, _ := NewRedactor(false, nil)
	if got := off.Redact("app --password=x"); got != "app --password=x" {
		t.Errorf("disabled redactor changed %q", got)
	}
	if _, err := NewRedactor(true, []string{"("}); err == nil {
		t.Error("a bad pattern was accepted")
	}
}

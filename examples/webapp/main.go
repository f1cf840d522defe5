// Command webapp is the sample project Conveyor's example pipeline builds, tests and deploys.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
)

// Version is set at build time by the pipeline (-ldflags "-X main.Version=...").
var Version = "dev"

func greeting(name string) string {
	if name == "" {
		name = "world"
	}
	return fmt.Sprintf("hello, %s (webapp %s)", name, Version)
}

func main() {
	addr := flag.String("listen", "127.0.0.1:8081", "address to listen on")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Println(Version)
		return
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, greeting(r.URL.Query().Get("name")))
	})
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	log.Printf("webapp %s listening on %s", Version, *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}

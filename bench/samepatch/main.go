// A minimal admission webhook that answers every review with one fixed answer: the one
// kruise-manager gave for the benchmark's pod, captured at the start of the run (its JSON
// Patch and audit annotations), so it returns the SAME patch as ours whatever the injection
// rules are. It decodes each review as a real webhook does, and serves HTTPS the standard
// way (net/http's ListenAndServeTLS, TLS >= 1.2, HTTP/2 offered), as controller-runtime
// does. GET /requests tells how many reviews it answered (the benchmark checks that only
// the serving side gets traffic).
//
//	samepatch <addr> <tls.crt> <tls.key> <answer.json>
package main

import (
	"crypto/tls"
	"encoding/json"
	"log"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
)

type review struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Request    *struct {
		UID    string         `json:"uid"`
		Object map[string]any `json:"object"`
	} `json:"request"`
}

func main() {
	if len(os.Args) != 5 {
		log.Fatal("usage: samepatch <addr> <tls.crt> <tls.key> <answer.json>")
	}
	raw, err := os.ReadFile(os.Args[4])
	if err != nil {
		log.Fatal(err)
	}
	var answer map[string]any // the manager's response without its uid: allowed, patchType, patch, ...
	if err := json.Unmarshal(raw, &answer); err != nil {
		log.Fatal(err)
	}
	var answered atomic.Int64
	http.HandleFunc("GET /requests", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strconv.FormatInt(answered.Load(), 10)))
	})
	http.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		var in review
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Request == nil {
			http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
			return
		}
		response := make(map[string]any, len(answer)+1)
		for k, v := range answer {
			response[k] = v
		}
		response["uid"] = in.Request.UID
		answered.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
			"response": response})
	})
	server := &http.Server{Addr: os.Args[1], TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	log.Fatal(server.ListenAndServeTLS(os.Args[2], os.Args[3]))
}

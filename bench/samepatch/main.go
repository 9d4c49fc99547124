// A minimal admission webhook that answers each review with an answer captured from
// kruise-manager at the start of the benchmark's run (its JSON Patch and audit annotations),
// so it returns the SAME patch as ours whatever the injection rules are, without computing
// any. The answers file holds a default answer (the template pods' one) and, for pods whose
// label <label> has a value listed there, the answer captured for a pod with that value (the
// distinct pods' shapes). It decodes each review as a real webhook does, and serves HTTPS the
// standard way (net/http's ListenAndServeTLS, TLS >= 1.2, HTTP/2 offered), as
// controller-runtime does. GET /requests tells how many reviews it answered (the benchmark
// checks that only the serving side gets traffic).
//
//	samepatch <addr> <tls.crt> <tls.key> <answers.json>
//
// answers.json: {"default": {...}, "label": "bench-shape", "byLabel": {"s0": {...}, ...}}
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

// answers are the manager's responses without their uid: allowed, patchType, patch, ...
type answers struct {
	Default map[string]any            `json:"default"`
	Label   string                    `json:"label"`
	ByLabel map[string]map[string]any `json:"byLabel"`
}

func main() {
	if len(os.Args) != 5 {
		log.Fatal("usage: samepatch <addr> <tls.crt> <tls.key> <answers.json>")
	}
	raw, err := os.ReadFile(os.Args[4])
	if err != nil {
		log.Fatal(err)
	}
	var known answers
	if err := json.Unmarshal(raw, &known); err != nil {
		log.Fatal(err)
	}
	if known.Default == nil {
		log.Fatal("answers.json has no default answer")
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
		answer := known.Default
		if meta, ok := in.Request.Object["metadata"].(map[string]any); ok && known.Label != "" {
			if labels, ok := meta["labels"].(map[string]any); ok {
				if value, ok := labels[known.Label].(string); ok && known.ByLabel[value] != nil {
					answer = known.ByLabel[value]
				}
			}
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

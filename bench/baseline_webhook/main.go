// A minimal admission webhook: allows everything, patches nothing. The floor any webhook
// pays on this machine, for comparison with kruise-manager.
package main

import (
	"encoding/json"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var review map[string]any
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		req, _ := review["request"].(map[string]any)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
			"response": map[string]any{"uid": req["uid"], "allowed": true}})
	})
	panic(http.ListenAndServeTLS(os.Args[1], os.Args[2], os.Args[3], nil))
}

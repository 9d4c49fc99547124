// Upstream v1.8.3's WorkloadSpread validation run over the cases in $WS_CASES, one verdict
// line each in $WS_OUT ("OK" or the aggregated error). Copied into a copy of the upstream
// module's pkg/webhook/workloadspread/validating by diff.py (it calls unexported functions).
package validating

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	appsv1alpha1 "github.com/openkruise/kruise/apis/apps/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

type diffCase struct {
	WS       json.RawMessage   `json:"ws"`
	Old      json.RawMessage   `json:"old"`
	Others   []json.RawMessage `json:"others"`
	Workload json.RawMessage   `json:"workload"`
}

func TestWorkloadSpreadVerdicts(t *testing.T) {
	data, err := os.ReadFile(os.Getenv("WS_CASES"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []diffCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	out, _ := os.Create(os.Getenv("WS_OUT"))
	defer out.Close()
	for _, c := range cases {
		ws := &appsv1alpha1.WorkloadSpread{}
		if err := json.Unmarshal(c.WS, ws); err != nil {
			fmt.Fprintf(out, "DECODE %v\n", err)
			continue
		}
		if len(c.Workload) > 0 {
			deploy := &appsv1.Deployment{}
			if err := json.Unmarshal(c.Workload, deploy); err != nil {
				t.Fatal(err)
			}
			// as the manager's cached client returns it: with its kind
			deploy.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("Deployment"))
			errs := validateWorkloadSpreadSubsets(ws, ws.Spec.Subsets, deploy, field.NewPath("spec").Child("subsets"))
			if len(errs) == 0 {
				fmt.Fprintln(out, "OK")
			} else {
				fmt.Fprintln(out, errs.ToAggregate().Error())
			}
			continue
		}
		objs := []client.Object{}
		for _, o := range c.Others {
			other := &appsv1alpha1.WorkloadSpread{}
			if err := json.Unmarshal(o, other); err != nil {
				t.Fatal(err)
			}
			objs = append(objs, other)
		}
		h := &WorkloadSpreadCreateUpdateHandler{Client: fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()}
		errs := h.validatingWorkloadSpreadFn(ws)
		if len(c.Old) > 0 && string(c.Old) != "null" {
			old := &appsv1alpha1.WorkloadSpread{}
			if err := json.Unmarshal(c.Old, old); err != nil {
				t.Fatal(err)
			}
			errs = append(errs, validateWorkloadSpreadTargetRefUpdate(ws.Spec.TargetReference, old.Spec.TargetReference, field.NewPath("spec"))...)
		}
		if len(errs) == 0 {
			fmt.Fprintln(out, "OK")
		} else {
			fmt.Fprintln(out, errs.ToAggregate().Error())
		}
	}
}

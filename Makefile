# kruisectl: the two commands of the README are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all venv build build-upstream image image-tools browser dist lock cluster-up cluster-down demo demo-down preflight test test-unit bench fuzz-sidecarset fuzz-workloadspread diff-wsvalidation clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

## build: build (or find cached) etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok, helm,
## and promtool (the chart's alerts are tested with it)
build: $(STAMP)
	@start=$$(date +%s); rc=0; $(PY) -m localcluster build || rc=$$?; echo "binary build took $$(( $$(date +%s) - start ))s"; exit $$rc

## build-upstream: the above, and the real upstream kruise-manager from the Go module proxy (the tests run it)
build-upstream: $(STAMP)
	@start=$$(date +%s); rc=0; $(PY) -m localcluster build --upstream || rc=$$?; echo "binary build took $$(( $$(date +%s) - start ))s"; exit $$rc

## image-tools: the Debian tools the image needs (built with mmdebstrap, umoci, skopeo; its Dockerfile
## checked with buildah; run by crun or runc), installed with apt-get when missing
IMAGE_TOOLS := mmdebstrap:mmdebstrap umoci:umoci skopeo:skopeo buildah:buildah crun:crun runc:runc unshare:util-linux
image-tools:
	@missing=""; for pair in $(IMAGE_TOOLS); do command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null; then echo "image tools missing:$$missing (no apt-get here: install them yourself; until then no image and no containers)"; exit 0; fi; \
	  echo "installing with apt-get:$$missing"; \
	  $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

## browser: a headless Chromium (Debian's chromium-headless-shell, or chromium when present) for the drill
## report's check in a real browser engine, installed with apt-get when missing
browser:
	@if ! command -v chromium-headless-shell >/dev/null && ! command -v chromium >/dev/null; then \
	  if ! command -v apt-get >/dev/null; then echo "no headless Chromium (no apt-get here: install chromium-headless-shell yourself; until then the browser test cannot run)"; exit 0; fi; \
	  echo "installing with apt-get: chromium-headless-shell"; \
	  $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq --no-install-recommends chromium-headless-shell >/dev/null; \
	fi

## image: the manager image without a container daemon -> dist/kruise-manager-<version>.{oci,docker}.tar
image: $(STAMP) image-tools
	$(PY) -m localcluster.image

## dist: the release in dist/, every artifact of kruisectl's version (docs/release.md): wheel and sdist
## (the chart inside), the chart packaged by helm, the helm plugin's tarball, the image, SHA256SUMS
dist: image
	$(PY) -m localcluster.dist

## lock: requirements-lock.txt (the image's dependencies, with hashes) from pyproject.toml
lock: $(STAMP)
	$(PY) -m pip install --quiet pip-tools
	$(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links --allow-unsafe \
	  --output-file requirements-lock.txt pyproject.toml

## cluster-up / cluster-down: a local control plane in the background; prints its kubeconfig
cluster-up: build
	$(PY) -m localcluster up

cluster-down: $(STAMP)
	$(PY) -m localcluster down

## demo: the main job on the embedded local control plane
demo: build image-tools
	$(PY) -m localcluster.demo up

demo-down: $(STAMP)
	$(PY) -m localcluster.demo down

## preflight: can this machine run every tier (root, network namespaces, a memory cgroup, an OCI
## runtime, the image tools, a headless browser)? Fails at once naming what is missing and how to get
## it; as root it first installs the image tools and the browser.
## KRUISECTL_PARTIAL=netns,memory,oci,image,browser (or all) leaves tiers out.
preflight: $(STAMP)
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory image-tools browser; fi
	@$(PY) -m localcluster.capabilities

## test: everything, against the real local control plane (builds binaries on first run); a test
## the machine cannot run fails, and a skip fails the run, unless KRUISECTL_PARTIAL allows it; the
## 40 slowest steps are listed at the end. TEST_WORKERS pytest-xdist workers run the test modules
## side by side (docs/testing.md); TEST_WORKERS=0 runs them one after another in one process.
TEST_WORKERS ?= 4
UNIT_WORKERS ?= 4
XDIST = -n $(1) --dist loadscope --no-loadscope-reorder
test: preflight
	@$(MAKE) --no-print-directory build-upstream
	$(PY) -m pytest -ra --durations=40 $(call XDIST,$(TEST_WORKERS)) $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(PY) -m pytest -ra -m "not cluster and not image" $(call XDIST,$(UNIT_WORKERS)) $(PYTEST_ARGS)

bench: build
	@for b in bench/*.py; do [ "$$b" = bench/repeat.py ] && continue; echo "== $$b"; $(PY) $$b || exit 1; done

## fuzz-sidecarset: the SidecarSet differential test (tests/upstream/test_sidecarset_fuzz.py) with N random
## combinations of SEED (a new seed each run unless given) against the real upstream manager; FEATURES=ci|all|a,b,…
## Prints each difference as a ready-to-add parity case, then {"combinations": …, "identical": …, "differences": …, "seed": …}
N ?= 2000
SEED ?= $(shell date +%s)
FEATURES ?= ci
fuzz-sidecarset: $(STAMP)
	@report=$$(mktemp); rc=0; \
	FUZZ_N=$(N) FUZZ_SEED=$(SEED) FUZZ_FEATURES=$(FEATURES) FUZZ_SHRINK=$${FUZZ_SHRINK:-120} FUZZ_REPORT=$$report \
	  $(PY) -m pytest -ra -q -s -p no:cacheprovider tests/upstream/test_sidecarset_fuzz.py >&2 || rc=$$?; \
	if [ -s $$report ]; then $(PY) -c 'import json, sys; d = json.load(open(sys.argv[1])); \
	[print(x["case"] + "\n") for x in d["differences"]]; print(json.dumps(d["summary"]))' $$report; \
	else echo "no report: the run did not finish (see above)" >&2; fi; rm -f $$report; exit $$rc

## fuzz-workloadspread: the WorkloadSpread differential test (tests/upstream/test_workloadspread_fuzz.py) with
## N random combinations of SEED (a new seed each run unless given; N is 40 unless given: about 15 s each)
## against the real upstream manager, each played 0 -> N -> M -> K on both control planes.
## Prints each difference as a ready-to-add case, then {"combinations": …, "identical": …, "differences": …, "seed": …}
fuzz-workloadspread: $(STAMP)
	@report=$$(mktemp); rc=0; \
	FUZZ_N=$(if $(filter command line environment,$(origin N)),$(N),40) FUZZ_SEED=$(SEED) FUZZ_REPORT=$$report \
	  $(PY) -m pytest -ra -q -s -p no:cacheprovider tests/upstream/test_workloadspread_fuzz.py >&2 || rc=$$?; \
	if [ -s $$report ]; then $(PY) -c 'import json, sys; d = json.load(open(sys.argv[1])); \
	[print(x["case"] + "\n") for x in d["differences"]]; print(json.dumps(d["summary"]))' $$report; \
	else echo "no report: the run did not finish (see above)" >&2; fi; rm -f $$report; exit $$rc

## diff-wsvalidation: WorkloadSpread validation against upstream v1.8.3's Go functions
## (tools/wsvalidation/diff.py) with SEED and COUNT random objects besides the unit tables
diff-wsvalidation: $(STAMP)
	$(PY) tools/wsvalidation/diff.py --seed $(or $(SEED),1) --count $(or $(COUNT),1000)

clean:
	rm -rf $(VENV) .pytest_cache

"""Small Kubernetes helpers shared by the manager, the CLI library and the test harness.

Nothing here imports click, the manager or the CLI: each module is one concept of the API's
own semantics (label selectors, ...), written once so every caller agrees with the apiserver.
"""

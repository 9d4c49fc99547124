"""Kubernetes' name formats as apimachinery validates them (k8s.io/apimachinery/pkg/util/
validation): each a regex and the message the apiserver gives for a value that does not match,
written once so the manager's webhooks and the CLI refuse what the apiserver refuses, in its
words."""

from __future__ import annotations

import re
from typing import NamedTuple


class Format(NamedTuple):
    regex: re.Pattern
    message: str  # as RegexError prints it: the rule, examples, the regex

    def match(self, value: str) -> bool:
        return self.regex.match(value) is not None


def _format(fmt: str, rule: str, *examples: str) -> Format:
    """``fmt`` anchored, and the message as apimachinery's RegexError(rule, fmt, examples...)."""
    shown = "".join(f"{' or ' if i else ''}'{example}', " for i, example in enumerate(examples))
    return Format(re.compile(f"^{fmt}$"), f"{rule} ({'e.g. ' + shown if examples else ''}regex used for validation "
                                          f"is '{fmt}')")


QUALIFIED_NAME = _format(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]",
                         "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                         "alphanumeric character", "MyName", "my.name", "123-abc")
LABEL_VALUE = _format(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?",
                      "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                      "and must start and end with an alphanumeric character", "MyValue", "my_value", "12345")
DNS1123_LABEL = _format(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?",
                        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
                        "must start and end with an alphanumeric character", "my-name", "123-abc")
DNS1123_SUBDOMAIN = _format(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
                            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
                            "or '.', and must start and end with an alphanumeric character", "example.com")
ENV_VAR_NAME = _format(r"[-._a-zA-Z][-._a-zA-Z0-9]*",
                       "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', "
                       "or '.', and must not start with a digit", "my.env-name", "MY_ENV.NAME", "MyEnvName1")

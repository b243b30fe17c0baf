"""template.yaml as CloudFormation sees it after SAM's transform, offline.

`python -m offload_local.translate OUT.json` writes it for tools that cannot read SAM (the
policy scan checks the IAM roles SAM generates); tests use `translated()` directly.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from offload_local.template import TEMPLATE_PATH, load


class _NoManagedPolicies:
    """The transform asks IAM for managed policy ARNs; the template names none."""

    def load(self) -> dict[str, str]:
        return {}


def translated(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The transformed template; code locations as `sam package` would leave them."""
    from samtranslator.translator.transform import transform

    template = load(path)
    for resource in template["Resources"].values():
        for uri in ("CodeUri", "ContentUri"):
            if uri in resource.get("Properties", {}):
                resource["Properties"][uri] = "s3://bucket/key"
    return dict(transform(template, {}, _NoManagedPolicies()))


def main(argv: list[str] | None = None) -> int:
    (out,) = argv if argv is not None else sys.argv[1:]
    # The transform fills in AWS::Region; any region gives the same resources.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(translated(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

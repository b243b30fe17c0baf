"""HEADs of generated objects: 404 and 403 both mean absent (AWS answers 403 without
s3:ListBucket); any other failure is a real one."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from offload import storage


@pytest.mark.parametrize(("code", "status"), [("404", 404), ("403", 403), ("NoSuchKey", 404)])
def test_missing_or_forbidden_key_is_absent(code, status):
    s3 = boto3.client("s3")
    with Stubber(s3) as stub:
        stub.add_client_error("head_object", service_error_code=code, http_status_code=status)
        assert storage.object_exists(s3, "bucket", "files/x.json") is False


def test_other_failures_are_raised():
    s3 = boto3.client("s3")
    with Stubber(s3) as stub:
        stub.add_client_error("head_object", service_error_code="SlowDown", http_status_code=503)
        with pytest.raises(ClientError):
            storage.object_exists(s3, "bucket", "files/x.json")


def test_a_name_beyond_ascii_is_also_given_as_rfc_6266_filename_star():
    from offload.storage import Download

    disposition = Download("katalog-größe.json", "application/json").disposition
    assert disposition == (
        "attachment; filename=\"katalog-gr__e.json\"; filename*=UTF-8''katalog-gr%C3%B6%C3%9Fe.json"
    )
    assert Download("catalog-2026-12-02.json", "application/json").disposition == (
        'attachment; filename="catalog-2026-12-02.json"'
    )

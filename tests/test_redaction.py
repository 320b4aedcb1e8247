"""Redaction by structure and by value, on the option shapes of s3fs, gcsfs and adlfs and on presigned S3, GCS and
Azure SAS URLs; and every place the data pipeline records them: the manifest, the stage logs, error messages."""

import inspect
import json
import subprocess
import sys

import pytest

from namespace.data_pipeline.build import _manifest
from namespace.data_pipeline.commands import read_config
from namespace.data_pipeline.stage_log import output_to
from namespace.data_pipeline.storage import check_inputs
from namespace.redaction import REDACTED, redacted, redacted_text, redacted_url

from .conftest import ROOT

AWS_KEY, AWS_SECRET, AWS_SESSION = (
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "FwoGZXIvYXdzEXAMPLE",
)
SSE_KEY = "c2VjcmV0LWN1c3RvbWVyLWtleS0zMi1ieXRlcyE="
MINIO_PASSWORD = "minio-password-123"
PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
SAS_SIGNATURE = "lLZ3ubnzTz5yqGK6QF2KN2c%2FjPbPV1Ci7wD7nDh4aA0%3D"
CLIENT_SECRET = "Qx58Q~abcdefghijklmnopqrstuvwxyz0123"
GOOG_SIGNATURE = "7d1f0c3e8a4b5c6d" * 8
SECRETS = (AWS_KEY, AWS_SECRET, AWS_SESSION, SSE_KEY, MINIO_PASSWORD, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", ACCOUNT_KEY,
           SAS_SIGNATURE, CLIENT_SECRET, GOOG_SIGNATURE, "0123abcdef")  # fmt: skip

# s3fs.S3FileSystem(key, secret, token, endpoint_url, client_kwargs, config_kwargs, s3_additional_kwargs)
S3FS = {
    "key": AWS_KEY,
    "secret": AWS_SECRET,
    "token": AWS_SESSION,
    "endpoint_url": f"http://minio:{MINIO_PASSWORD}@127.0.0.1:9000",
    "client_kwargs": {"region_name": "eu-west-1", "aws_session_token": AWS_SESSION},
    "config_kwargs": {"retries": {"max_attempts": 5}},
    "s3_additional_kwargs": {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": SSE_KEY},
    "anon": False,
}
# gcsfs.GCSFileSystem(project, token): token as the parsed JSON of a service account's key file
GCSFS = {
    "project": "laion-project",
    "token": {
        "type": "service_account",
        "project_id": "laion-project",
        "private_key_id": "1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c",
        "private_key": PRIVATE_KEY,
        "client_email": "builder@laion-project.iam.gserviceaccount.com",
        "client_id": "104328765432109876543",
        "token_uri": "https://127.0.0.1:9/token",
    },
}
# adlfs.AzureBlobFileSystem(account_name, account_key, connection_string, sas_token, credential, client_secret, ...)
SAS_TOKEN = f"sv=2022-11-02&ss=b&srt=co&sp=rl&se=2030-01-01T00:00:00Z&spr=https&sig={SAS_SIGNATURE}"
ADLFS = {
    "account_name": "laionstore",
    "account_key": ACCOUNT_KEY,
    "connection_string": f"DefaultEndpointsProtocol=https;AccountName=laionstore;AccountKey={ACCOUNT_KEY};"
    "EndpointSuffix=core.windows.net",
    "sas_token": SAS_TOKEN,
    "credential": ACCOUNT_KEY,
    "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "client_id": "00000000-0000-0000-0000-000000000001",
    "client_secret": CLIENT_SECRET,
}
PRESIGNED = {  # the real query shapes (all redaction reads) on 127.0.0.1's discard port: strings, never contacted
    "s3": "https://127.0.0.1:9/laion-s3/captions/part-00000.parquet?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    f"&X-Amz-Credential={AWS_KEY}%2F20250101%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Date=20250101T000000Z"
    f"&X-Amz-Expires=3600&X-Amz-Security-Token={AWS_SESSION}&X-Amz-SignedHeaders=host&X-Amz-Signature=0123abcdef",
    "gcs": "https://127.0.0.1:9/laion-gcs/captions/part-00001.parquet?X-Goog-Algorithm=GOOG4-RSA-SHA256"
    "&X-Goog-Credential=builder%40laion-project.iam.gserviceaccount.com%2F20250101%2Fauto%2Fstorage%2Fgoog4_request"
    f"&X-Goog-Date=20250101T000000Z&X-Goog-Expires=3600&X-Goog-SignedHeaders=host&X-Goog-Signature={GOOG_SIGNATURE}",
    "azure": f"https://127.0.0.1:9/laionstore-azure/captions/part-00002.parquet?{SAS_TOKEN}",
}


def assert_no_secret(text: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, leaked


def test_the_option_shapes_are_the_filesystems_own():
    s3fs = pytest.importorskip("s3fs")
    assert set(S3FS) <= set(inspect.signature(s3fs.S3FileSystem.__init__).parameters)


def test_s3fs_options_lose_their_keys_and_the_endpoint_password():
    options = redacted(S3FS)
    assert_no_secret(json.dumps(options))
    assert options["key"] == options["secret"] == options["token"] == REDACTED
    assert options["endpoint_url"] == "http://<redacted>@127.0.0.1:9000"
    assert options["client_kwargs"] == {"region_name": "eu-west-1", "aws_session_token": REDACTED}
    assert options["s3_additional_kwargs"] == {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": REDACTED}
    assert options["config_kwargs"] == S3FS["config_kwargs"] and options["anon"] is False  # settings stay


def test_a_gcsfs_service_account_is_redacted_whole():
    options = redacted(GCSFS)
    assert options == {"project": "laion-project", "token": REDACTED}
    assert redacted({"token": "/home/me/service-account.json"})["token"] == REDACTED


def test_adlfs_keys_connection_strings_and_sas_tokens_are_redacted():
    options = redacted(ADLFS)
    assert_no_secret(json.dumps(options))
    for name in ("account_key", "connection_string", "sas_token", "credential", "client_secret"):
        assert options[name] == REDACTED, name
    assert {name: options[name] for name in ("account_name", "tenant_id", "client_id")} == {
        name: ADLFS[name] for name in ("account_name", "tenant_id", "client_id")
    }
    # the same strings under names that do not look secret are redacted by value
    text = redacted({"azure": ADLFS["connection_string"], "query": SAS_TOKEN})
    assert text["azure"] == "DefaultEndpointsProtocol=https;AccountName=laionstore;AccountKey=<redacted>;" + (
        "EndpointSuffix=core.windows.net"
    )
    assert SAS_SIGNATURE not in text["query"]


def test_secrets_at_any_depth_and_in_dicts_inside_lists():
    options = {
        "storage_options": {"headers": {"Authorization": f"Bearer {CLIENT_SECRET}", "User-Agent": "magicnaming"}},
        "mirrors": [{"url": f"https://user:{MINIO_PASSWORD}@mirror.example.com/laion", "passwd": MINIO_PASSWORD}],
        "fallbacks": ({"x-api-key": CLIENT_SECRET},),
    }
    found = redacted(options)
    assert_no_secret(json.dumps(found))
    assert found["storage_options"]["headers"] == {"Authorization": REDACTED, "User-Agent": "magicnaming"}
    assert found["mirrors"] == [{"url": "https://<redacted>@mirror.example.com/laion", "passwd": REDACTED}]
    assert found["fallbacks"] == ({"x-api-key": REDACTED},)


@pytest.mark.parametrize("cloud", sorted(PRESIGNED))
def test_presigned_urls_lose_their_query_and_keep_the_object(cloud):
    url = redacted_url(PRESIGNED[cloud])
    assert url == PRESIGNED[cloud].split("?")[0] + "?<redacted>"
    assert redacted([PRESIGNED[cloud]]) == [url]


@pytest.mark.parametrize(
    "kept",
    [
        "s3://laion/captions/part-?.parquet",  # a glob, not a query
        "abfs://captions@laionstore.dfs.core.windows.net/part-*.parquet",  # the container, not a user
        "https://example.com/names.txt?versionId=3",
        "hdfs://builder@namenode:8020/laion",
        "an-org/a-model-1.0",  # the shape of a hub id
    ],
)
def test_what_holds_no_secret_is_kept_to_the_character(kept):
    assert redacted_url(kept) == kept and redacted_text(kept) == kept and redacted({"url": kept}) == {"url": kept}


def test_our_own_configs_hold_nothing_that_looks_secret():
    """No false alarm on the project's settings (num_tokens, min_tokens, ...): redacting them changes nothing."""
    yaml = pytest.importorskip("yaml")
    files = sorted((ROOT / "configs").rglob("*.yaml"))
    assert files
    for path in files:
        config = yaml.safe_load(path.read_text())
        assert redacted(config) == config, path


def test_free_text_loses_secret_pairs_urls_and_private_keys():
    line = (
        f"botocore: 403 Forbidden url='{PRESIGNED['s3']}' kwargs={{'key': '{AWS_KEY}', 'secret': '{AWS_SECRET}', "
        f"'region_name': 'eu-west-1'}} Authorization: Bearer {CLIENT_SECRET} password={MINIO_PASSWORD} num_tokens=8 "
        "single_token=3"
    )
    text = redacted_text(line + "\n" + json.dumps(GCSFS["token"]))
    assert_no_secret(text)
    assert "'region_name': 'eu-west-1'" in text and "num_tokens=8 single_token=3" in text and "403 Forbidden" in text


def test_the_manifest_records_the_config_redacted():
    """What build() publishes with the dataset: storage options of every shape, presigned caption URLs."""
    config = read_config(ROOT / "configs/data/demo.yaml")
    config.source.sample = None
    config.source.captions = list(PRESIGNED.values())
    config.source.name_lists = [f"s3://laion/names/names.txt?versionId=3&X-Amz-Signature={GOOG_SIGNATURE}"]
    config.source.storage_options = {**S3FS, "mirrors": [ADLFS]}
    config.output_storage_options = GCSFS
    summary = {"identities": 2, "train_identities": 1, "val_identities": 1, "images": {}, "name_shape": [8, 80]}
    stages = {"assemble": {**summary, "shards": {}, "funnel": []}}
    stages |= {name: {"files": [PRESIGNED["azure"].rsplit("/", 1)[1]]} for name in ("sample", "names", "match")}
    stages["names"]["dropped"] = {"single_token": 3}  # a count, whatever its name
    stages |= {name: {} for name in ("download", "features", "probe", "clean", "targets")}
    manifest = _manifest(config, config.source.captions, config.source.name_lists, stages)
    assert_no_secret(json.dumps(manifest))
    assert manifest["sources"] == {
        "captions": ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"],
        "name_lists": ["names.txt"],
    }
    assert manifest["config"]["source"]["captions"] == [url.split("?")[0] + "?<redacted>" for url in PRESIGNED.values()]
    assert manifest["config"]["output_storage_options"] == {"project": "laion-project", "token": REDACTED}
    assert manifest["config"]["names"]["min_tokens"] == config.names.min_tokens  # settings as they were
    assert manifest["stages"]["names"]["dropped"] == {"single_token": 3}
    assert manifest["config"]["pipeline"] == config.pipeline and manifest["counts"]["name_shape"] == [8, 80]


def test_the_stage_log_is_redacted_for_this_process_and_its_children(tmp_path, capfd):
    child = f"import sys; print('child', {ADLFS['connection_string']!r}); print({PRESIGNED['gcs']!r}, file=sys.stderr)"
    with output_to(tmp_path / "stage.log") as terminal:
        print(f"reading {PRESIGNED['s3']}")
        print(f"options {S3FS}", file=sys.stderr)
        subprocess.run([sys.executable, "-c", child], check=True)  # as a Spark JVM or img2dataset's workers
        print("progress", file=terminal)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "progress\n")
    log = (tmp_path / "stage.log").read_text()
    assert_no_secret(log)
    lines = log.splitlines()
    assert lines[0] == f"reading {PRESIGNED['s3'].split('?')[0]}?<redacted>"
    assert "'region_name': 'eu-west-1'" in lines[1] and "'key': '<redacted>'" in lines[1]
    assert lines[2].startswith("child DefaultEndpointsProtocol=https;AccountName=laionstore;AccountKey=<redacted>;")
    assert lines[3] == PRESIGNED["gcs"].split("?")[0] + "?<redacted>" and len(lines) == 4


def test_a_missing_input_is_named_without_its_signature(tmp_path):
    missing = f"file://{tmp_path}/gone.parquet?X-Amz-Signature=0123abcdef"
    with pytest.raises(FileNotFoundError, match=r"source.captions: '.*gone.parquet\?<redacted>' does not exist"):
        check_inputs([missing], "source.captions")

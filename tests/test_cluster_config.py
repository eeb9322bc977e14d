"""`raynas cluster check`: Ray's own validation of a cluster file, then its security defaults.

Each case edits the shipped cluster.yaml in one place, so it names exactly the check it needs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from raynas.cli import main

ROOT = Path(__file__).resolve().parents[1]
AWS = (ROOT / "cluster.yaml").read_text()
HEAD_START = "RAY_AUTH_MODE=token ray start --head"
# AWS's documented example keys (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_access-keys.html)
KEY_ID, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    res = CliRunner().invoke(main, ["cluster", "check", str(path)])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    return res.exit_code, res.output


def edited(old: str, new: str, text: str = AWS) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-local.yaml"])
def test_the_shipped_cluster_files_pass(tmp_path, name):
    code, output = check(tmp_path, (ROOT / name).read_text())
    assert (code, output) == (0, "ok\n")


def test_a_misspelt_key_is_caught_by_rays_own_validation(tmp_path):
    code, output = check(tmp_path, edited("max_workers: 8", "max_worker: 8"))
    assert code == 1
    assert output.startswith("error: Ray rejects the file at the top level: ")
    assert "'max_worker' was unexpected" in output


def test_a_misspelt_key_of_a_node_type_names_where_it_is(tmp_path):
    code, output = check(tmp_path, edited("    min_workers: 0\n    max_workers: 6", "    min_worker: 0\n    max_workers: 6"))
    assert code == 1 and "at available_node_types/cpu_worker" in output and "'min_worker' was unexpected" in output


def test_a_dashboard_open_to_every_address_is_an_error(tmp_path):
    code, output = check(tmp_path, edited("--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0"))
    assert code == 1
    assert output.startswith("error: the dashboard listens on 0.0.0.0: ")
    assert "use --dashboard-host=127.0.0.1 and reach it with `ray dashboard FILE`" in output


def test_token_authentication_switched_off_is_an_error(tmp_path):
    code, output = check(tmp_path, edited(HEAD_START, "RAY_AUTH_MODE=disabled ray start --head"))
    assert code == 1
    assert output.startswith("error: RAY_AUTH_MODE=disabled turns Ray's token authentication off")


def test_token_authentication_never_switched_on_is_a_warning(tmp_path):
    text = AWS.replace("RAY_AUTH_MODE=token ", "").replace("\\nexport RAY_AUTH_MODE=token", "")
    code, output = check(tmp_path, text)
    assert code == 0 and output.startswith("warning: token authentication is not switched on")


@pytest.mark.parametrize("line, what", [
    (f"  - export AWS_ACCESS_KEY_ID={KEY_ID}\n", "an AWS access key id"),
    (f"  - aws configure set aws_secret_access_key {SECRET}\n", "an AWS secret access key"),
    ("  - export RAY_AUTH_TOKEN=0123456789abcdef\n", "a Ray authentication token"),
])
def test_a_credential_in_the_file_is_an_error_that_does_not_repeat_it(tmp_path, line, what):
    text = edited("\nsetup_commands:\n", "\nsetup_commands:\n" + line)
    code, output = check(tmp_path, text)
    number = text.splitlines().index(line.rstrip("\n")) + 1
    assert code == 1
    assert output.startswith(f"error: line {number} holds what looks like {what}; fix: delete it and rotate it")
    assert KEY_ID not in output and SECRET not in output and "0123456789abcdef" not in output


def test_a_head_without_an_instance_profile_is_an_error(tmp_path):
    code, output = check(tmp_path, edited("      IamInstanceProfile: {Name: raynas-head}\n", ""))
    assert code == 1
    assert output.startswith("error: node type 'head' (the head) has no IamInstanceProfile")


def test_a_security_group_opening_more_than_ssh_to_the_internet_is_an_error(tmp_path):
    def rule(port: int) -> str:
        return (f"    IpPermissions:\n      - {{IpProtocol: tcp, FromPort: {port}, ToPort: {port}, "
                "IpRanges: [{CidrIp: 0.0.0.0/0}]}\n")

    group = "    GroupName: raynas-ssh-only\n"
    assert check(tmp_path, edited(group, group + rule(22))) == (0, "ok\n")
    code, output = check(tmp_path, edited(group, group + rule(8265)))
    assert code == 1
    assert output.startswith("error: provider.security_group opens ports 8265-8265/tcp to the whole internet")


def test_uploading_the_whole_folder_without_excluding_virtualenvs_is_flagged(tmp_path):
    code, output = check(tmp_path, edited('  - "**/.venv*"\n', ""))
    assert code == 0  # a warning: nothing is exposed, but the upload is large
    assert output.startswith("warning: file_mounts uploads the whole folder to /home/ubuntu/raynas")


def test_cluster_yaml_installs_the_torch_build_of_each_node_type_and_launches_gpus_on_demand():
    import yaml
    from ray.autoscaler._private.util import prepare_config

    config = prepare_config(yaml.safe_load(AWS))
    cpu_index = "--index-url https://download.pytorch.org/whl/cpu"
    # the head and cpu_worker run the merged setup; gpu_worker's own list replaces it
    assert any(cpu_index in c for c in config["head_setup_commands"])
    assert any(cpu_index in c for c in config["worker_setup_commands"])
    gpu = config["available_node_types"]["gpu_worker"]
    torch = [c for c in gpu["worker_setup_commands"] if "torch" in c]
    assert torch == ["pip install -q torch==2.13.0"]
    assert gpu["min_workers"] == 0 and gpu["resources"]["GPU"] == 1
    # the same shared storage and environment on every node, written once rather than appended
    assert gpu["worker_setup_commands"][:2] == config["setup_commands"][:2]
    assert ">>" not in AWS and "/etc/profile.d/raynas.sh" in config["setup_commands"][1]

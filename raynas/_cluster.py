"""`raynas cluster check FILE`: Ray's own validation of a cluster YAML, then its security defaults.

Ray's cluster launcher checks the shape of the file (``prepare_config`` and ``validate_config``,
the same calls ``ray up`` makes); it says nothing about who can reach the cluster. The checks
here read the file as written (before Ray fills in defaults) and flag what README.md's cluster
guide ("Security") asks for: the dashboard on the head's loopback only, Ray's token
authentication on, a least-privilege instance profile on AWS, a security group that opens
nothing but SSH, no credentials in the file, and no virtualenv uploaded by ``file_mounts``.
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ERROR, WARNING = "error", "warning"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
#: ``--dashboard-host=X``, ``--dashboard-host X``, ``dashboard_host="X"`` (``webui`` is its old name).
_DASHBOARD_HOST = re.compile(r"(?:dashboard|webui)[-_]host[\s=:\"']+([^\s\"',)]+)", re.IGNORECASE)
_AUTH_DISABLED = re.compile(r"RAY_AUTH_MODE[\s\"']*[=:][\s\"']*disabled", re.IGNORECASE)
_AUTH_TOKEN_MODE = re.compile(r"RAY_AUTH_MODE[\s\"']*[=:][\s\"']*token", re.IGNORECASE)
#: What a credential looks like, with what to call it (the value itself is never printed).
_CREDENTIALS = (
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"aws_secret_access_key[\s\"':=]+[A-Za-z0-9/+=]{40}", re.IGNORECASE), "an AWS secret access key"),
    (re.compile(r"aws_session_token[\s\"':=]+[A-Za-z0-9/+=]{16}", re.IGNORECASE), "an AWS session token"),
    (re.compile(r"RAY_AUTH_TOKEN[\s\"']*[:=][\s\"']*[^\s\"'$]"), "a Ray authentication token"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
)
DOCS = "https://docs.ray.io/en/latest/cluster/vms/references/ray-cluster-configuration.html"


@dataclass(frozen=True)
class Finding:
    """One problem in a cluster file: how bad it is, what it is, and how to fix it."""

    severity: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}; fix: {self.fix}"


def check_file(path: str | Path) -> list[Finding]:
    """Every finding for the cluster YAML at ``path``, Ray's validation first."""
    text = Path(path).read_text()
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [Finding(ERROR, f"not valid YAML: {exc}".replace("\n", " "), "correct the YAML syntax")]
    if not isinstance(config, dict):
        return [Finding(ERROR, "not a Ray cluster file (the YAML is not a mapping)", f"see {DOCS}")]
    return ray_findings(config) + security_findings(config, text)


def ray_findings(config: dict[str, Any]) -> list[Finding]:
    """What Ray's cluster launcher itself rejects (``prepare_config`` then ``validate_config``)."""
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    ray_log = logging.getLogger("ray.autoscaler")
    level = ray_log.level
    ray_log.setLevel(logging.WARNING)  # not its INFO lines about the defaults it fills in
    try:
        validate_config(prepare_config(copy.deepcopy(config)))
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        return [Finding(ERROR, f"Ray rejects the file at {where}: {exc.message}",
                        f"correct that key or value (the keys Ray knows: {DOCS})")]
    except Exception as exc:  # prepare_config raises ClickException, KeyError, ValueError, ...
        message = exc.format_message() if hasattr(exc, "format_message") else f"{type(exc).__name__}: {exc}"
        return [Finding(ERROR, f"Ray rejects the file: {message}", f"see {DOCS}")]
    finally:
        ray_log.setLevel(level)
    return []


def security_findings(config: dict[str, Any], text: str) -> list[Finding]:
    """The security items of README.md's cluster guide, read from the file as written."""
    return [
        *_dashboard(_commands(config)),
        *_token_auth(text),
        *_instance_profiles(config),
        *_security_group(config),
        *_credentials(text),
        *_file_mounts(config),
    ]


def _commands(config: dict[str, Any]) -> list[str]:
    keys = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
            "head_start_ray_commands", "worker_start_ray_commands")
    commands = [c for k in keys for c in config.get(k) or []]
    for node_type in (config.get("available_node_types") or {}).values():
        commands += [c for k in keys for c in (node_type or {}).get(k) or []]
    return [str(c) for c in commands]


def _dashboard(commands: list[str]) -> list[Finding]:
    hosts = sorted({h for c in commands for h in _DASHBOARD_HOST.findall(c) if h.lower() not in LOOPBACK})
    return [Finding(ERROR, f"the dashboard listens on {host}: anyone who reaches that address can submit "
                           "jobs, which run code on every node",
                    "use --dashboard-host=127.0.0.1 and reach it with `ray dashboard FILE` (an SSH tunnel)")
            for host in hosts]


def _token_auth(text: str) -> list[Finding]:
    if _AUTH_DISABLED.search(text):
        return [Finding(ERROR, "RAY_AUTH_MODE=disabled turns Ray's token authentication off: any process that "
                               "reaches a Ray port can run code on the cluster",
                        "remove it; start Ray with RAY_AUTH_MODE=token and the token of "
                        "`ray get-auth-token --generate` (see cluster.yaml)")]
    if not _AUTH_TOKEN_MODE.search(text):
        return [Finding(WARNING, "token authentication is not switched on: Ray 2.60's `ray start` runs without it "
                                 "unless RAY_AUTH_MODE=token (or a token file is on the node)",
                        "prefix the ray start commands with RAY_AUTH_MODE=token and mount the token file "
                        "(see cluster.yaml)")]
    return []


def _instance_profiles(config: dict[str, Any]) -> list[Finding]:
    if (config.get("provider") or {}).get("type") != "aws":
        return []
    head = config.get("head_node_type")
    out = []
    for name, node_type in (config.get("available_node_types") or {}).items():
        if "IamInstanceProfile" in ((node_type or {}).get("node_config") or {}):
            continue
        if name == head:
            out.append(Finding(ERROR, f"node type {name!r} (the head) has no IamInstanceProfile: the launcher gives "
                                      "it its default role, with AmazonEC2FullAccess and AmazonS3FullAccess",
                               "set node_config.IamInstanceProfile to a least-privilege profile (README.md, "
                               "\"Security\", has the policy)"))
        else:
            out.append(Finding(WARNING, f"node type {name!r} has no IamInstanceProfile: its nodes get no AWS role "
                                        "and cannot reach the results bucket",
                               "set node_config.IamInstanceProfile to the workers' bucket-only profile"))
    return out


def _security_group(config: dict[str, Any]) -> list[Finding]:
    rules = ((config.get("provider") or {}).get("security_group") or {}).get("IpPermissions") or []
    out = []
    for rule in rules:
        ranges = [r.get("CidrIp") for r in rule.get("IpRanges") or []]
        ranges += [r.get("CidrIpv6") for r in rule.get("Ipv6Ranges") or []]
        ssh_only = str(rule.get("IpProtocol")) == "tcp" and rule.get("FromPort") == 22 and rule.get("ToPort") == 22
        if not ssh_only and {"0.0.0.0/0", "::/0"} & set(ranges):
            ports = ("all ports" if str(rule.get("IpProtocol")) == "-1"
                     else f"ports {rule.get('FromPort')}-{rule.get('ToPort')}/{rule.get('IpProtocol')}")
            out.append(Finding(ERROR, f"provider.security_group opens {ports} to the whole internet",
                               "open nothing but SSH (22), which the launcher adds itself; reach the dashboard "
                               "with `ray dashboard FILE`"))
    return out


def _credentials(text: str) -> list[Finding]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern, what in _CREDENTIALS:
            if pattern.search(line):
                out.append(Finding(ERROR, f"line {number} holds what looks like {what}",
                                   "delete it and rotate it; the launcher reads AWS credentials from your "
                                   "environment or ~/.aws, and Ray its token from ~/.ray/auth_token"))
                break
    return out


def _file_mounts(config: dict[str, Any]) -> list[Finding]:
    whole = [remote for remote, local in (config.get("file_mounts") or {}).items()
             if str(local).rstrip("/") in (".", "") or str(local).endswith("/.")]
    excluded = any(".venv" in str(p) for p in config.get("rsync_exclude") or [])
    if whole and not excluded:
        return [Finding(WARNING, f"file_mounts uploads the whole folder to {whole[0]}, virtualenvs and build "
                                 "outputs included (and any secrets lying there)",
                        "add rsync_exclude entries (\"**/.venv\", \"**/.git\") and rsync_filter: [\".gitignore\"]")]
    return []

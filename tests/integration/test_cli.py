"""``sre-agent investigate`` as a user runs it from a shell."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import EXAMPLES, settings_env
from tests.support.model_scripts import investigator
from tests.support.net import free_port

FIRING = EXAMPLES / "group-firing-homepage.json"


def run_cli(*args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 90):
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "sre_agent.cli", *args],
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli_into_closed_pipe(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """As ``cmd | head`` once head has left: stdout a pipe nobody reads any more."""
    import os

    read, write = os.pipe()
    os.close(read)
    try:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
        return subprocess.run(
            [sys.executable, "-m", "sre_agent.cli", *args],
            env={**full_env, **env},
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write)


def test_investigate_prints_a_report(make_settings, ollama, prometheus):
    ollama.default = investigator
    env = settings_env(make_settings(prometheus_url=prometheus.url))
    proc = run_cli("investigate", str(FIRING), env=env)
    assert proc.returncode == 0, proc.stderr
    # Two alerts are critical/warning; the info one is not investigated.
    assert proc.stdout.startswith("# KubeDeploymentReplicasMismatch (warning)\n")
    assert "# CPUThrottlingHigh" not in proc.stdout
    assert "skipping CPUThrottlingHigh: severity 'info'" in proc.stderr
    assert "# KubePodCrashLooping (warning)" in proc.stdout
    assert "SITE_API_UPSTREAM_URL" in proc.stdout
    assert "[2/2] investigating KubePodCrashLooping" in proc.stderr  # progress on stderr
    assert "CANARY" not in proc.stdout + proc.stderr


def test_investigate_json_from_stdin(make_settings, ollama):
    ollama.default = investigator
    alert = json.loads(FIRING.read_text())["alerts"][1]
    proc = run_cli(
        "investigate", "-", "--json", env=settings_env(make_settings()), stdin=json.dumps(alert)
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["status"] == "completed"
    assert record["alertname"] == "KubePodCrashLooping"
    assert record["analysis"]["root_causes"]


def test_investigate_fails_fast_without_ollama(make_settings):
    url = f"http://127.0.0.1:{free_port()}"
    env = settings_env(make_settings(ollama_url=url))
    proc = run_cli("investigate", str(FIRING), env=env, timeout=60)  # no retries to wait out
    assert proc.returncode == 3
    assert url in proc.stderr and "SRE_AGENT_OLLAMA_URL" in proc.stderr
    assert proc.stdout == ""


def test_investigate_names_a_missing_model(make_settings):
    env = settings_env(make_settings(model="llama9:70b"))
    proc = run_cli("investigate", str(FIRING), env=env)
    assert proc.returncode == 3
    assert "ollama pull llama9:70b" in proc.stderr


def test_investigate_rejects_bad_files(make_settings, tmp_path):
    env = settings_env(make_settings())
    missing = run_cli("investigate", str(tmp_path / "nope.json"), env=env)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "4", "status": "firing", "alerts": [{"labels": {}}]}')
    invalid = run_cli("investigate", str(bad), env=env)
    assert invalid.returncode == 2 and "alertname" in invalid.stderr
    assert "Traceback" not in missing.stderr + invalid.stderr


def test_investigate_says_its_record_is_thrown_away(make_settings, ollama):
    ollama.default = investigator
    env = settings_env(make_settings())
    env.pop("SRE_AGENT_DATABASE_URL")
    alert = json.loads(FIRING.read_text())["alerts"][1]
    proc = run_cli("investigate", "-", env=env, stdin=json.dumps(alert))
    assert proc.returncode == 0, proc.stderr
    assert "throwaway database" in proc.stderr and "--database-url" in proc.stderr


def test_list_and_show_read_the_running_service(make_settings, ollama, tmp_path):
    """``investigate --database-url`` keeps the record where the service (and so
    ``list``, ``show``) finds it; the URL comes from SRE_AGENT_URL or --url."""
    from tests.support.service import ServiceProcess

    ollama.default = investigator
    env = settings_env(make_settings())
    database = env.pop("SRE_AGENT_DATABASE_URL")
    alert = json.loads(FIRING.read_text())["alerts"][1]
    with ServiceProcess({**env, "SRE_AGENT_DATABASE_URL": database}, tmp_path / "svc.log") as svc:
        kept = run_cli(
            "investigate", "-", "--json", "--database-url", database, env=env,
            stdin=json.dumps(alert),
        )  # fmt: skip
        assert kept.returncode == 0, kept.stderr
        ident = json.loads(kept.stdout)["id"]
        assert f"stored in {database}" in kept.stderr

        listed = run_cli("list", env={**env, "SRE_AGENT_URL": svc.url})
        assert listed.returncode == 0, listed.stderr
        [line] = listed.stdout.splitlines()
        assert line.startswith(ident) and "KubePodCrashLooping" in line and "completed" in line
        as_json = json.loads(run_cli("list", "--json", "--url", svc.url, env=env).stdout)
        assert [r["id"] for r in as_json["investigations"]] == [ident]
        none = run_cli("list", "--severity", "critical", "--url", svc.url, env=env)
        assert none.returncode == 0 and none.stdout == ""
        # A severity nothing has and sre-agent does not know: said, not an empty list.
        typo = run_cli("list", "--severity", "Critcal", "--url", svc.url, env=env)
        assert typo.returncode == 2 and typo.stdout == ""
        assert "'Critcal'" in typo.stderr and "did you mean 'critical'?" in typo.stderr
        bad = run_cli("list", "--before", "nosuchid", "--url", svc.url, env=env)
        assert bad.returncode == 2 and "nosuchid" in bad.stderr

        shown = run_cli("show", ident, env={**env, "SRE_AGENT_URL": svc.url})
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith("# KubePodCrashLooping (warning)")
        record = json.loads(run_cli("show", ident, "--json", "--url", svc.url, env=env).stdout)
        assert record["id"] == ident and record["status"] == "completed"
        missing = run_cli("show", "nope", "--url", svc.url, env=env)
        assert missing.returncode == 2 and "no investigation with id 'nope'" in missing.stderr
        # Its reader gone (`| head`): no traceback.
        gone_reader = run_cli_into_closed_pipe("show", ident, "--url", svc.url, env=env)
        assert gone_reader.returncode == 1 and gone_reader.stderr == "", gone_reader.stderr
        # An id is one path segment: what it holds is not a query, nor another route.
        odd = run_cli("show", "x?format=json", "--url", svc.url, env=env)
        assert odd.returncode == 2 and "no investigation with id 'x?format=json'" in odd.stderr

    gone = run_cli("list", "--url", svc.url, env=env)
    assert gone.returncode == 1 and svc.url in gone.stderr and "SRE_AGENT_URL" in gone.stderr


def test_a_bad_service_url_is_a_bad_setting_not_unreachable_nor_a_traceback():
    for args in (["list"], ["show", "abc"], ["chat", "abc", "-m", "hi"]):
        for url in ("localhost:8080", "http://[::1"):
            proc = run_cli(*args, "--url", url, env={})
            assert proc.returncode == 2, (args, url, proc.stderr)
            assert "--url: " in proc.stderr and repr(url) in proc.stderr
            assert "Traceback" not in proc.stderr and "cannot reach" not in proc.stderr


def test_serve_help_shows_the_defaults():
    proc = run_cli("serve", "--help", env={})
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())  # argparse wraps at the terminal's width
    assert "(default: 127.0.0.1)" in text and "(default: 8080)" in text


def test_help_never_shows_an_empty_default():
    """Every command's --help: a default where there is one, never "(default: None)"."""
    commands = ["serve", "investigate", "chat", "list", "show", "eval"]
    for command in commands:
        proc = run_cli(command, "--help", env={})
        assert proc.returncode == 0, (command, proc.stderr)
        text = " ".join(proc.stdout.split())
        assert "(default: None)" not in text and "(default: False)" not in text, command
    listing = " ".join(run_cli("list", "--help", env={}).stdout.split())
    assert "(default: 20)" in listing


def test_serve_refuses_a_port_that_is_none():
    for port in ("99999", "0", "-1", "http"):
        proc = run_cli("serve", "--port", port, env={})
        assert proc.returncode == 2, (port, proc.stderr)
        assert "argument --port" in proc.stderr and "Traceback" not in proc.stderr


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"SRE_AGENT_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
        proc = run_cli("serve", "--port", str(port), env=env)
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--port" in line
    assert not (tmp_path / "db.sqlite").exists()  # refused before anything opened


def test_interactive_chat_says_how_to_leave():
    proc = run_cli("chat", "abc", "--url", f"http://127.0.0.1:{free_port()}", env={}, stdin="")
    assert "empty line or Ctrl-D" in proc.stderr


def test_eval_tells_a_broken_lab_from_a_missing_one(tmp_path):
    """A lab that is installed but fails to import names its real problem; the other
    commands never import it."""
    broken = tmp_path / "sre_agent_lab"
    broken.mkdir()
    (broken / "__init__.py").write_text("import yaml_that_is_not_installed\n")
    env = {"PYTHONPATH": str(tmp_path)}
    run = run_cli("eval", "--scenarios-dir", str(tmp_path), "some-scenario", env=env)
    assert run.returncode == 2
    assert "the lab is installed but cannot be imported" in run.stderr
    assert "yaml_that_is_not_installed" in run.stderr and "Traceback" not in run.stderr
    run = run_cli("list", "--help", env=env)
    assert run.returncode == 0 and "usage: sre-agent list" in run.stdout


def test_serve_with_an_unusable_database_says_so_in_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = {"SRE_AGENT_DATABASE_URL": f"sqlite:///{blocker}/sre-agent.db"}
    run = run_cli("serve", "--host", "127.0.0.1", "--port", str(free_port()), env=env, timeout=60)
    assert run.returncode == 2
    assert "SRE_AGENT_DATABASE_URL: cannot open" in run.stderr and str(blocker) in run.stderr
    assert "Traceback" not in run.stderr


def test_list_lines_up_its_columns(tmp_path):
    """Rows of different alert names and namespaces: each column starts at one offset."""
    import http.server
    import threading

    rows = [
        {"id": "a" * 16, "created_at": "2026-12-02T04:28:16.123", "status": "failed",
         "severity": "warning", "alertname": "KubePodCrashLooping", "namespace": "homepage",
         "summary": "one"},
        {"id": "b" * 16, "created_at": "2026-12-02T04:28:17.123", "status": "completed",
         "severity": "critical", "alertname": "KubeDeploymentReplicasMismatch",
         "namespace": "kube-system", "summary": "two"},
    ]  # fmt: skip
    page = json.dumps({"investigations": rows, "count": 2, "next_before": None}).encode()

    class Api(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        listed = run_cli("list", "--url", url, env={})
    finally:
        server.shutdown()
        server.server_close()
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 2
    namespaces = zip(lines, ("homepage", "kube-system"), strict=True)
    assert len({line.index(ns) for line, ns in namespaces}) == 1
    assert len({line.index(s) for line, s in zip(lines, (" one", " two"), strict=True)}) == 1

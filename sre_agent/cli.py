"""The ``sre-agent`` command: ``serve``, ``investigate``, ``chat``, ``list``, ``show``, ``eval``.

Errors end here, in one place: a line on stderr and an exit code
(2 bad input or settings, 3 Ollama not usable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from sre_agent_tools.redact import redact

from sre_agent import __version__, chat_cli, db_cli, records_cli
from sre_agent.errors import AlertPayloadError, ConfigError, OllamaUnavailable
from sre_agent.logs import configure_logging
from sre_agent.settings import Settings, load_settings, unknown_variables

log = logging.getLogger("sre_agent.cli")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one to show: never "(default: None)", nor
    "(default: False)" on a flag."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _port(text: str) -> int:
    """A TCP port: an argparse error (usage, exit 2) for anything else, not a traceback."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (1-65535)")
    return port


def _parser(lab: bool = False) -> argparse.ArgumentParser:
    """The command line; ``lab``: with ``eval``'s own arguments (the lab is imported)."""
    parser = argparse.ArgumentParser(
        prog="sre-agent",
        description="Self-hosted AI alert investigator (settings: SRE_AGENT_* environment)",
    )
    parser.add_argument("--version", action="version", version=f"sre-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the API and the investigation workers",
        description="Serve the API and run the investigation workers (settings: SRE_AGENT_*).",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)"
    )
    serve.add_argument("--port", type=_port, default=8080, help="port to listen on")
    chat_cli.add_parser(sub)
    records_cli.add_parsers(sub)
    db_cli.add_parser(sub)
    inv = sub.add_parser("investigate", help="investigate an Alertmanager body (or one alert)")
    inv.add_argument("file", help="JSON file, or - for stdin")
    inv.add_argument(
        "--database-url",
        help="store the record there (e.g. the service's, sqlite:///./sre-agent.db) instead of"
        " a throwaway database; SRE_AGENT_DATABASE_URL, when set, does the same",
    )
    inv.add_argument("--json", action="store_true", help="print the whole record(s) as JSON")
    inv.add_argument(
        "--all-severities",
        action="store_true",
        help="investigate every firing alert, not only SRE_AGENT_SEVERITIES",
    )
    evaluate = sub.add_parser(
        "eval", help="run scenarios through the pipeline against their worlds and score them"
    )
    if lab:
        from sre_agent_lab.eval import add_arguments as add_eval_arguments

        add_eval_arguments(evaluate)
    for command in sub.choices.values():  # one help style for every command
        command.formatter_class = _HelpFormatter
    return parser


#: ``sre-agent eval`` without the lab installed (the production wheel and image hold none).
LAB_MISSING = (
    "sre-agent eval: the lab is not installed: it is its own package, sre-agent-lab"
    " (lab/ in the repository); from a checkout: make install-test, or"
    " .venv/bin/pip install -e ./lab (into the environment sre-agent runs from)"
)


def lab_problem() -> str | None:
    """Why ``sre-agent eval`` cannot run here (None: the lab imports): not installed, or
    installed but broken (a missing dependency of its own is not "not installed")."""
    try:
        import sre_agent_lab.eval  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name == "sre_agent_lab":
            return LAB_MISSING
        return f"sre-agent eval: the lab is installed but cannot be imported: {exc}"
    except Exception as exc:
        return (
            "sre-agent eval: the lab is installed but cannot be imported:"
            f" {exc.__class__.__name__}: {exc}"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    if command == "eval":  # the lab only for eval: a broken one never stops `list`
        problem = lab_problem()
        if problem is not None:
            print(problem, file=sys.stderr)
            return 2
    args = _parser(lab=command == "eval").parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"sre-agent: bad setting: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    for variable in unknown_variables():
        log.warning("%s is not a setting sre-agent knows: it has no effect", variable)
    try:
        from sre_agent.prompts import load_prompts

        load_prompts(settings.prompts_dir)  # unreadable prompts: one line now, not a traceback
    except (FileNotFoundError, OSError) as exc:
        print(f"sre-agent: bad setting: SRE_AGENT_PROMPTS_DIR: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "chat":
            url = records_cli.service_url(args, settings)
            return chat_cli.run(args, url, records_cli.auth_headers(settings))
        if args.command == "list":
            return records_cli.run_list(args, settings)
        if args.command == "show":
            return records_cli.run_show(args, settings)
        if args.command == "feedback":
            return records_cli.run_feedback(args, settings)
        if args.command == "runbook":
            return records_cli.run_runbook(args, settings)
        if args.command == "serve":
            return serve(settings, args.host, args.port)
        if args.command == "db":
            return db_cli.run(args, settings)
        if args.command == "eval":
            from sre_agent_lab.eval import main as evaluate

            return evaluate(settings, args)
        database = args.database_url or (
            settings.database_url if "database_url" in settings.model_fields_set else None
        )
        if args.database_url:
            settings = load_settings(database_url=args.database_url)
        return asyncio.run(
            investigate(
                settings,
                args.file,
                as_json=args.json,
                all_severities=args.all_severities,
                keep=database is not None,
            )
        )
    except (AlertPayloadError, ConfigError) as exc:
        print(f"sre-agent: {exc}", file=sys.stderr)
        return 2
    except OllamaUnavailable as exc:
        print(f"sre-agent: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `sre-agent show ID | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor at exit
        return 1


def _check_database(settings: Settings) -> None:
    """Open (and migrate) the database once before serving; ConfigError if it cannot be."""
    from sre_agent.db import DB_ERRORS
    from sre_agent.store import Store

    store = Store(settings.database_url)
    failures: tuple[type[BaseException], ...] = (*DB_ERRORS, OSError)
    try:
        store.open()
    except failures as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"SRE_AGENT_DATABASE_URL: cannot open {store.where}: {redact(reason)[:300]}"
        ) from None
    finally:
        store.close()


def serve(settings: Settings, host: str, port: int) -> int:
    from sre_agent import server
    from sre_agent.app import create_app
    from sre_agent.auth import check_bind, describe, webhook_warning

    # No records for a network with nothing to authenticate people (ConfigError, exit 2).
    anonymous_warning = check_bind(settings, host)
    # Bound before anything opens: a port in use is one line now, not a traceback after
    # the start-up checks. The database likewise: an unusable path is a bad setting.
    sock = server.listen(host, port)
    _check_database(settings)

    # The names of the host it is bound to are names users reach it by.
    hosts = dict.fromkeys((*settings.allowed_hosts, *server.bound_names(host)))
    settings = settings.model_copy(update={"allowed_hosts": tuple(hosts)})

    shown = "localhost" if host in ("0.0.0.0", "::") else host
    log.info(
        "sre-agent %s: webhook URL http://%s:%d/webhook/alert (%s %s, model %s,"
        " Prometheus %s, database %s)",
        __version__,
        shown,
        port,
        "Ollama" if settings.llm_api == "ollama" else "OpenAI-compatible model server",
        redact(settings.llm_url),
        settings.model,
        settings.prometheus_url,
        settings.database_url,
    )
    log.info(
        "answering to Host %s and IP addresses (SRE_AGENT_ALLOWED_HOSTS)",
        ", ".join(settings.allowed_hosts),
    )
    log.info("authentication: %s", describe(settings))
    for warning in (anonymous_warning, webhook_warning(settings, host)):
        if warning:
            log.warning("%s", warning)
    server.run(create_app(settings), settings, sock)
    return 0


async def investigate(
    settings: Settings,
    file: str,
    *,
    as_json: bool,
    all_severities: bool = False,
    keep: bool = False,
) -> int:
    """Investigate the firing alerts of ``file``; the records go to a throwaway database
    unless ``keep``: then to ``settings.database_url`` (the service's, for list/show/chat)."""
    from sre_agent.alerts import load_alert_file
    from sre_agent.backends import require_ollama
    from sre_agent.models import Investigation
    from sre_agent.report import render
    from sre_agent.services import open_services

    text = _read(file)
    payload = load_alert_file(text)
    firing = []
    for alert in payload.alerts:
        if alert.status != "firing":
            continue
        if not all_severities and (reason := settings.skip_reason(alert.severity)):
            log.info("skipping %s: %s (--all-severities investigates it)", alert.name, reason)
            continue
        firing.append(alert)
    if not firing:
        print("sre-agent: no firing alert in the input: nothing to investigate", file=sys.stderr)
        return 0
    await require_ollama(settings)
    settings = settings.model_copy(update={"reinvestigate": False})  # one shot: no later retry
    records: list[Investigation] = []
    with tempfile.TemporaryDirectory(prefix="sre-agent-") as tmp:
        if keep:
            log.info("the record is stored in %s (SRE_AGENT_DATABASE_URL)", settings.database_url)
        else:
            log.info(
                "the record lives in a throwaway database, gone when this command ends:"
                " --database-url (or SRE_AGENT_DATABASE_URL) names the service's to keep it"
            )
            throwaway = f"sqlite:///{Path(tmp) / 'one-shot.db'}"
            settings = settings.model_copy(update={"database_url": throwaway})
        # The worker is driven here, one alert at a time; nothing runs in the background.
        async with open_services(settings, serve=False, concurrency=1) as services:
            store, worker = services.store, services.worker
            if services.deps.kube_problem:
                log.warning("%s: Kubernetes lookups will report it", services.deps.kube_problem)
            for n, alert in enumerate(firing, 1):
                record, created = store.create_or_get(alert, payload.groupKey)
                if not created:
                    log.info(
                        "%s was investigated already (%s, %s): showing that record",
                        alert.name,
                        record.id,
                        record.status,
                    )
                log.info(
                    "[%d/%d] investigating %s (%s)", n, len(firing), alert.name, alert.severity
                )
                await worker.process(record.id)
                records.append(store.get(record.id) or record)
    if as_json:
        shown = [r.model_dump(mode="json") for r in records]
        print(json.dumps(shown if len(shown) > 1 else shown[0], indent=2))
    else:
        print("\n---\n\n".join(render(r) for r in records), end="")
    return 0 if all(r.status == "completed" for r in records) else 1


def _read(file: str) -> str:
    try:
        if file == "-":
            return sys.stdin.buffer.read().decode("utf-8")
        return Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise AlertPayloadError(f"cannot read {file}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise AlertPayloadError(f"{file} is not UTF-8 text: {exc.reason}") from None


if __name__ == "__main__":
    sys.exit(main())

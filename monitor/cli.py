"""The `monitor` command: run the daemon, check the configuration, test and explain rules, look at feeds and alerts.

Exit codes: 0 fine, 1 a check or test failed (or nothing to show / retry), 2 bad usage or configuration (also a
rule, channel or secret the daemon cannot start with); 3 the daemon could not start for another reason (Redis
unreachable, port in use). Expected errors are one `error: ...` line (one JSON object with --log-format json),
never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, NoReturn, Optional

import typer

from . import __version__, logs
from .config import Config, default_config_path, known_channels, load_config
from .errors import ConfigError, MonitorError, RuleError
from .settings import parse_duration

# show_locals off: a traceback of a bug must not print local variables (resolved secrets could be among them)
app = typer.Typer(add_completion=False, no_args_is_help=True, help="monitor: a news-monitoring daemon.",
                  pretty_exceptions_show_locals=False)
rules_app = typer.Typer(no_args_is_help=True, help="Test, explain and replay the analysts' rules.")
alerts_app = typer.Typer(no_args_is_help=True, help="Alert history, dead letters and re-sending.")
feeds_app = typer.Typer(help="Per source state; feed lists (OPML import/export) and finding a site's feeds.")
app.add_typer(rules_app, name="rules")
app.add_typer(alerts_app, name="alerts")
app.add_typer(feeds_app, name="feeds")
entries_app = typer.Typer(no_args_is_help=True, help="Feed entries that gave up (dead letters): list, retry.")
app.add_typer(entries_app, name="entries")
log = logging.getLogger("monitor")

ConfigOpt = typer.Option(None, "--config", "-c", help="monitor.yaml (default: $MONITOR_CONFIG, else ./monitor.yaml)")


_OUTPUT = {"format": "text"}  # how expected errors are printed: `run --log-format json` makes them JSON


def fail(exc: MonitorError | str, code: int) -> NoReturn:
    """Print an expected error (its one problem as one line, or a summary with one line per problem) and exit."""
    if isinstance(exc, str):
        message, problems = exc, []
    else:
        problems = list(getattr(exc, "problems", None) or [])
        message = str(exc).split("\n", 1)[0]
        if len(problems) == 1:
            message, problems = problems[0], []
    typer.echo(logs.error_line(message, problems, fmt=_OUTPUT["format"]), err=True)
    raise typer.Exit(code)


def _exit_code(exc: MonitorError) -> int:
    return 2 if isinstance(exc, (ConfigError, RuleError)) else 3


def _config(path: Optional[Path], *, code: int = 2) -> Config:
    try:
        return load_config(str(path) if path else default_config_path())
    except ConfigError as exc:
        fail(exc, code)


def _run(coro: Awaitable[Any]) -> Any:
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except MonitorError as exc:
        fail(exc, _exit_code(exc))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"monitor {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                              help="Print the version and exit.")) -> None:
    """monitor: a news-monitoring daemon."""


@app.command()
def run(config: Optional[Path] = ConfigOpt,
        once: bool = typer.Option(False, "--once", help="One cycle over all sources, finish the work, exit."),
        log_format: Optional[str] = typer.Option(None, "--log-format", help="text or json"),
        log_level: Optional[str] = typer.Option(None, "--log-level", help="DEBUG, INFO, WARNING, ERROR")) -> None:
    """Run the daemon (or one cycle with --once)."""
    from .daemon import Daemon

    if log_format not in (None, "text", "json"):
        fail(f"--log-format {log_format}: use text or json", 2)
    _OUTPUT["format"] = log_format or "text"
    cfg = _config(config)
    _OUTPUT["format"] = log_format or cfg.log.format
    logs.setup(level=(log_level or cfg.log.level).upper(), fmt=_OUTPUT["format"])
    daemon = Daemon(cfg)
    if once:
        new = _run(_once(daemon))
        log.info("cycle finished: %d new entries", new)
    else:
        _run(daemon.run())


async def _once(daemon: Any) -> int:
    """run --once; a run where every source failed to poll is a failed check (exit 1)."""
    from .daemon import AllSourcesFailed

    try:
        return await daemon.run_once()
    except AllSourcesFailed as exc:
        fail(str(exc), 1)


@app.command()
def check(config: Optional[Path] = ConfigOpt) -> None:
    """Validate the configuration, its channels' secrets and every rule file; exit 1 on any error."""
    from .alerts.channels import resolve_channel_urls
    from .rules import load_rules

    path = str(config) if config else default_config_path()
    cfg = _config(config, code=1)
    try:  # exactly what `run` does before it starts: a secret that cannot be read fails here too
        resolve_channel_urls(cfg.channels, source=cfg.source_path)
    except ConfigError as exc:
        fail(exc, 1)
    typer.echo(f"configuration {path or '(defaults)'}: ok ({len(cfg.feeds())} sources, {len(cfg.channels)} channels, "
               "secrets resolved)")
    try:
        ruleset = load_rules(cfg.rules.path, known_channels=known_channels(cfg))
    except RuleError as exc:
        fail(exc, 1)
    typer.echo(f"rules {cfg.rules.path}: ok ({len(ruleset.rules)} rules, version {ruleset.version})")


# --- rules ------------------------------------------------------------------------------------------------------

@rules_app.command("test")
def rules_test(path: Optional[Path] = typer.Argument(None, help="rules folder or file (default: from config)"),
               config: Optional[Path] = ConfigOpt) -> None:
    """Run every rule's match:/no_match: examples; exit 1 with a diff on any failure."""
    from .rules.tools import run_rule_tests

    cfg = _config(config)
    target = path or Path(cfg.rules.path)
    # channel names are checked against the configuration in effect; with none at all (built-in defaults) they
    # cannot be, since any monitor.yaml may define them
    named = config is not None or default_config_path() is not None
    try:
        ok, report = run_rule_tests(target, known_channels=known_channels(cfg) if named else None)
    except RuleError as exc:
        fail(exc, 1)
    typer.echo(report)
    raise typer.Exit(0 if ok else 1)


@rules_app.command("forms")
def rules_forms(path: Optional[Path] = typer.Argument(None, help="rules folder (default: from config)"),
                language: Optional[str] = typer.Option(None, help="one language block, e.g. pt"),
                kind: Optional[str] = typer.Option(None, help="one entity kind, e.g. state"),
                unlike: bool = typer.Option(False, "--unlike", help="only words with forms unlike the word"),
                config: Optional[Path] = ConfigOpt) -> None:
    """The inflected forms each word of the language blocks matches; forms unlike the word are shown apart."""
    from .rules.tools import inflection_report

    cfg = _config(config)
    try:
        _flagged, report = inflection_report(path or Path(cfg.rules.path), language=language, kind=kind,
                                             unlike_only=unlike)
    except RuleError as exc:
        fail(exc, 1)
    typer.echo(report)


@rules_app.command("explain")
def rules_explain(source: str = typer.Argument(..., help="a file, an http(s) URL, or - for standard input"),
                  config: Optional[Path] = ConfigOpt,
                  color: Optional[bool] = typer.Option(None, "--color/--no-color")) -> None:
    """For one article: each rule's verdict and why (terms in context, entities, the clause that failed)."""
    from .explain import load_article
    from .rules import load_rules
    from .rules.tools import render_explanation

    cfg = _config(config)
    try:
        ruleset = load_rules(cfg.rules.path)
    except RuleError as exc:
        fail(exc, 1)
    try:
        article = asyncio.run(load_article(source, cfg))
    except MonitorError as exc:
        fail(exc, 1)
    typer.echo(render_explanation(ruleset, article, color=sys.stdout.isatty() if color is None else color))


@rules_app.command("eval")
def rules_eval(labelled: Path = typer.Argument(..., help="labelled JSON lines (see docs/rules.md, 'rules eval')"),
               rule: Optional[list[str]] = typer.Option(None, "--rule", help="rule id (repeatable; default: all)"),
               rules_path: Optional[Path] = typer.Option(None, "--rules", help="rules folder (default: config)"),
               as_json: bool = typer.Option(False, "--json", help="one JSON object per rule"),
               min_precision: Optional[float] = typer.Option(None, "--min-precision", help="exit 1 below this"),
               min_recall: Optional[float] = typer.Option(None, "--min-recall", help="exit 1 below this"),
               config: Optional[Path] = ConfigOpt) -> None:
    """Precision, recall and slot accuracy of rules on texts labelled by hand; the misses and why."""
    import json

    from .rules import load_rules
    from .rules.evaluate import as_json as report_json, evaluate, read_labelled, render

    target = rules_path or Path(_config(config).rules.path)
    try:
        ruleset = load_rules(target)
        records = read_labelled(labelled)
        ids = rule or [r.id for r in ruleset.rules if r.enabled]
        reports = [evaluate(ruleset, rule_id, records) for rule_id in ids]
    except RuleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    failed = False
    for report in reports:
        typer.echo(json.dumps(report_json(report), ensure_ascii=False) if as_json else render(report) + "\n")
        low = [f"precision {report.precision:.3f} < {min_precision}" for _ in [0]
               if min_precision is not None and report.precision < min_precision]
        low += [f"recall {report.recall:.3f} < {min_recall}" for _ in [0]
                if min_recall is not None and report.recall < min_recall]
        if low:
            failed = True
            typer.echo(f"FAIL {report.rule_id}: " + ", ".join(low), err=True)
    raise typer.Exit(1 if failed else 0)


@rules_app.command("replay")
def rules_replay(since: str = typer.Option("7d", help="how far back: 24h, 7d, ..."),
                 rule: Optional[str] = typer.Option(None, "--rule", help="only this rule id"),
                 rules: Optional[Path] = typer.Option(None, "--rules",
                                                      help="a draft rules folder or file instead of the live one"),
                 config: Optional[Path] = ConfigOpt) -> None:
    """Run the current (or draft) rules over stored articles: what would fire now, and what no longer would."""
    from .replay import replay
    from .rules import load_rules

    try:
        seconds = parse_duration(since)
    except ValueError as exc:
        fail(f"--since: {exc}", 2)
    cfg = _config(config)
    try:  # loaded before Redis is touched: a broken draft or an unknown rule id costs nothing
        ruleset = load_rules(rules or cfg.rules.path, known_channels=known_channels(cfg))
    except RuleError as exc:
        fail(exc, 1)
    if rule and rule not in {r.id for r in ruleset.rules}:
        fail(f"rule {rule!r} is not in {rules or cfg.rules.path} (rules: {', '.join(r.id for r in ruleset.rules)})",
             1)
    typer.echo(_with_redis(cfg, lambda client, keys: replay(client, keys, cfg, since=seconds, rule_id=rule,
                                                             ruleset=ruleset)))


# --- feeds and alerts -------------------------------------------------------------------------------------------

def _with_redis(cfg: Config, fn: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    """Run `fn(client, keys)` on the configured Redis, or on the embedded one's data under data_dir (never created
    here: a command that only reads must not leave an empty ./data behind when run in the wrong folder)."""
    from .store import Keys, open_redis

    if not cfg.redis.url and not Path(cfg.data_dir).is_dir():
        where = cfg.source_path if cfg.source_path != "(defaults)" else "no configuration file (./monitor.yaml " \
            "or $MONITOR_CONFIG)"
        fail(f"no monitor data at {cfg.data_dir}: {where} sets no redis.url and the data directory does not exist; "
             "pass -c with the daemon's monitor.yaml", 1)

    async def go() -> Any:
        client, embedded = await open_redis(cfg.redis.url, cfg.data_dir)
        try:
            return await fn(client, Keys(cfg.redis.prefix))
        finally:
            await client.aclose()
            if embedded is not None:
                embedded.stop()

    return _run(go())


@feeds_app.callback(invoke_without_command=True)
def feeds(ctx: typer.Context, config: Optional[Path] = ConfigOpt,
          wide: bool = typer.Option(False, "--wide", help="errors in full, not cut to the terminal"),
          as_json: bool = typer.Option(False, "--json", help="one JSON document")) -> None:
    """Per source: last success, next check, entries, articles from the page / from feed text / failed /
    dead-lettered, and the last poll and page errors."""
    if ctx.invoked_subcommand is not None:
        return
    cfg = _config(config)
    sources = {f.id: f for f in cfg.feeds()}
    report = _with_redis(cfg, lambda client, keys: _feeds_report(client, keys, cfg, sources))
    if as_json:
        import json

        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    cut = (lambda text: text) if wide else (lambda text: text[:70])
    rows = [("id", "name", "last success", "next check", "entries", "ok", "feed text", "failed", "dead", "errors",
             "last error", "last page error")]
    for r in report:
        a = r["articles"]
        rows.append((r["id"], (r["name"] or r["url"])[:40], _when(r["last_success"]), _when(r["next_check"]),
                     str(r["entries"]), str(a["ok"]), str(a["feed_text"]), str(a["failed"]), str(r["dead"]),
                     str(r["error_streak"]), cut(r["last_error"]),
                     cut(" ".join(filter(None, (a["last_error_url"], a["last_error"]))))))
    typer.echo(_table(rows))


async def _feeds_report(client: Any, keys: Any, cfg: Config, sources: dict[str, Any]) -> list[dict[str, Any]]:
    from .store.feeds import FeedStore
    from .store.sources import SourceStats
    from .models import WORK_STREAMS
    from .streams import Stream

    states = {s.feed_id: s for s in await FeedStore(client, keys).states()}
    stats = await SourceStats(client, keys).many(list(sources))
    dead: dict[str, int] = {}
    for name in WORK_STREAMS:
        for m in await Stream(client, keys, name, consumer="cli").dead_all():
            dead[str(m.payload.get("feed_id", ""))] = dead.get(str(m.payload.get("feed_id", "")), 0) + 1
    out = []
    for fid, feed in sources.items():
        s, a = states.get(fid), stats[fid]
        out.append({"id": fid, "name": feed.name, "url": feed.url, "fetch_page": feed.fetch_page,
                    "last_success": s.last_success if s else None, "next_check": s.next_check if s else None,
                    "entries": s.entries_seen if s else 0, "error_streak": s.error_streak if s else 0,
                    "last_error": (s.last_error if s else "") or "", "articles": a.to_dict(), "dead": dead.get(fid, 0),
                    "articles_failing": a.failing(cfg.pipeline.articles_failing_after)})
    return out


@entries_app.command("list")
def entries_list(dead: bool = typer.Option(False, "--dead", help="the dead-lettered entries"),
                 feed: Optional[str] = typer.Option(None, "--feed", help="only this source's (its id)"),
                 limit: int = typer.Option(50, help="how many, newest first"),
                 wide: bool = typer.Option(False, "--wide", help="errors in full"),
                 config: Optional[Path] = ConfigOpt) -> None:
    """Dead-lettered entries (--dead) with their source, deliveries and error; without --dead, the counts."""
    from .models import WORK_STREAMS
    from .streams import Stream

    cfg = _config(config)

    async def show(client: Any, keys: Any) -> str:
        found: list[tuple[str, Any]] = []  # (stage, dead-letter record), oldest first
        counts = []
        for name in WORK_STREAMS:
            stream = Stream(client, keys, name, consumer="cli")
            mine = [m for m in await stream.dead_all() if feed is None or m.payload.get("feed_id") == feed]
            found += [(WORK_STREAMS[name], m) for m in mine]
            counts.append(f"{name} stream: {await stream.length()} messages, {await stream.pending_count()} pending, "
                          f"{len(mine)} dead-lettered")
        if not dead:
            return "\n".join(counts) + "\n(monitor entries list --dead)"
        found.sort(key=lambda item: tuple(int(part) for part in item[1].id.split("-")))
        rows = [("ID", "STAGE", "SOURCE", "DELIVERIES", "URL", "ERROR")]
        for stage, m in reversed(found[-limit:] if limit > 0 else found):
            error = str(m.payload.get("_error", ""))
            rows.append((m.id, stage, str(m.payload.get("feed_id", "?")), str(m.deliveries),
                         str(m.payload.get("url", "?")), error if wide else error[:80]))
        return _table(rows) if len(rows) > 1 else "no dead-lettered entries"

    typer.echo(_with_redis(cfg, show))


@entries_app.command("retry")
def entries_retry(entry_id: Optional[str] = typer.Argument(None, help="a dead-letter id (monitor entries list --dead)"),
                  feed: Optional[str] = typer.Option(None, "--feed", help="every dead-lettered entry of this source"),
                  config: Optional[Path] = ConfigOpt) -> None:
    """Queue dead-lettered entries again, each at the stage where it gave up: the daemon (or the next run --once)
    fetches and matches it (fetch stage) or matches it (match stage)."""
    from .models import WORK_STREAMS
    from .streams import Stream

    if (entry_id is None) == (feed is None):
        fail("entries retry: give one dead-letter ID or --feed SOURCE_ID", 2)
    cfg = _config(config)

    async def go(client: Any, keys: Any) -> int:
        count = 0
        for name in WORK_STREAMS:  # an entry that failed in the match stage goes back there, not to its fetch
            stream = Stream(client, keys, name, consumer="cli")
            chosen = [m for m in await stream.dead_all()
                      if (m.id == entry_id if entry_id is not None else m.payload.get("feed_id") == feed)]
            count += await stream.requeue_dead(chosen)
        return count

    count = _with_redis(cfg, go)
    if not count:
        fail(f"no dead-lettered entry {entry_id or 'of source ' + str(feed)} (monitor entries list --dead)", 1)
    typer.echo(f"{count} entr{'y' if count == 1 else 'ies'} queued again")


@alerts_app.command("list")
def alerts_list(limit: int = typer.Option(20, help="how many, newest first"), config: Optional[Path] = ConfigOpt,
                dead: bool = typer.Option(False, "--dead", help="the dead-letter stream instead")) -> None:
    """What fired, when, for which story, and what each channel answered."""
    from .alerts.history import History

    cfg = _config(config)

    async def show(client: Any, keys: Any) -> str:
        history = History(client, keys)
        return await (history.render_dead(limit) if dead else history.render_list(limit))

    typer.echo(_with_redis(cfg, show))


@alerts_app.command("show")
def alerts_show(alert_id: str, config: Optional[Path] = ConfigOpt) -> None:
    """One alert with its sources, evidence and per-channel results."""
    from .alerts.history import History

    cfg = _config(config)

    async def show(client: Any, keys: Any) -> str | None:
        return await History(client, keys).render_show(alert_id)

    text = _with_redis(cfg, show)
    if text is None:
        fail(f"no alert {alert_id} (monitor alerts list shows the known ids)", 1)
    typer.echo(text)


@alerts_app.command("retry")
def alerts_retry(alert_id: str, config: Optional[Path] = ConfigOpt) -> None:
    """Send a dead-lettered alert again."""
    from .alerts.deliver import Deliverer

    cfg = _config(config)

    async def go(client: Any, keys: Any) -> str:
        deliverer = Deliverer(client, keys, settings=cfg.alerts, channels=cfg.channels, consumer=cfg.consumer_name(),
                              data_dir=cfg.data_dir)
        reason = await deliverer.why_not_retryable(alert_id)
        if reason:
            return reason
        await deliverer.retry_dead(alert_id)
        await deliverer.run(asyncio.Event(), burst=True)
        return ""

    reason = _with_redis(cfg, go)
    if reason:
        fail(reason, 1)
    typer.echo(f"alert {alert_id} sent again")


# --- feed lists: OPML import / export, finding a site's feeds -----------------------------------------------------

WriteOpt = typer.Option(False, "--write", help="add them to monitor.yaml (comments and layout kept) instead of "
                                               "printing the YAML")


@feeds_app.command("import")
def feeds_import(opml: Path = typer.Argument(..., help="an OPML file exported by a feed reader"),
                 write: bool = WriteOpt, config: Optional[Path] = ConfigOpt) -> None:
    """The feeds of an OPML file as sources (folders and categories become tags): print the YAML, or --write."""
    from .config import listed_sources

    cfg = _config(config)
    try:
        sources, warnings = listed_sources(opml, label=str(opml))
    except ConfigError as exc:
        fail(exc, 2)
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    if not sources:
        fail(f"{opml}: no feed outlines (outline elements with an xmlUrl)", 1)
    items = [(s.url, s.name, tuple(s.tags)) for s in sources]
    _add_sources(cfg, config, items, write=write, origin=f"{len(items)} feeds of {opml}")


@feeds_app.command("export")
def feeds_export(output: Optional[Path] = typer.Option(None, "--output", "-o", help="file (default: standard output)"),
                 config: Optional[Path] = ConfigOpt) -> None:
    """Every feed source (sources.feeds and sources.opml) as OPML 2.0, names as titles, tags as folders/categories."""
    from .sources.opml import ListedFeed, write_opml

    cfg = _config(config)
    listed = [ListedFeed(url=s.url, name=s.name, tags=tuple(s.tags)) for s in cfg.feed_sources()]
    body = write_opml(listed, title=f"monitor feeds ({cfg.source_path})")
    if output is None:
        sys.stdout.buffer.write(body)
        return
    try:
        output.write_bytes(body)
    except OSError as exc:
        fail(f"{output}: cannot write: {exc.strerror or exc}", 1)
    typer.echo(f"{len(listed)} feeds written to {output}", err=True)


@feeds_app.command("add")
def feeds_add(url: str = typer.Argument(..., help="a site's page, or a feed's URL"), write: bool = WriteOpt,
              every: bool = typer.Option(False, "--all", help="with --write: every feed found, not only the first"),
              config: Optional[Path] = ConfigOpt) -> None:
    """Find the feeds a page links to (<link rel="alternate"> RSS, Atom, JSON Feed) or the URL itself if it is one."""
    from .net import Fetcher
    from .sources.discover import discover

    cfg = _config(config)

    async def find() -> Any:
        async with Fetcher(cfg.fetch) as fetcher:
            return await discover(url, fetcher)

    try:
        found = asyncio.run(find())
    except MonitorError as exc:  # the page could not be had: a lookup that failed, not a daemon that cannot start
        fail(exc, 1)
    for why in found.rejected:
        typer.echo(f"# not a feed: {why}", err=True)
    if not found.feeds:
        fail(f"{url}: no feed found: the page links no RSS, Atom or JSON Feed (<link rel=\"alternate\" "
             "type=...>) that could be read, and is not a feed itself", 1)
    for feed in found.feeds:
        typer.echo(f"# {feed.kind}: {feed.title or '(no title)'}", err=True)
    chosen = found.feeds if every or not write else found.feeds[:1]
    if write and len(found.feeds) > 1 and not every:
        typer.echo(f"# {len(found.feeds)} feeds found; --write adds the first, --all adds every one", err=True)
    _add_sources(cfg, config, [(f.url, f.title, ()) for f in chosen], write=write, origin=url)


def _add_sources(cfg: Config, config: Optional[Path], items: list[tuple[str, str, tuple[str, ...]]], *,
                 write: bool, origin: str) -> None:
    """Print the sources.feeds items to add (those not configured yet), or write them into monitor.yaml."""
    from .configedit import feed_item, write_feed_items

    known = {s.url for s in cfg.feed_sources()}
    new = [feed_item(url, name=name, tags=tags) for url, name, tags in items if url not in known]
    if len(new) < len(items):
        typer.echo(f"# {len(items) - len(new)} of {origin} already configured, left out", err=True)
    if not new:
        typer.echo("nothing to add", err=True)
        return
    if not write:
        typer.echo("# add under sources: feeds: in monitor.yaml (or run again with --write)", err=True)
        typer.echo("\n".join(f"- {item}" for item in new))
        return
    path = config or (Path(p) if (p := default_config_path()) else None)
    if path is None:
        fail("--write: no monitor.yaml to write to (pass -c FILE or set $MONITOR_CONFIG)", 2)
    try:
        write_feed_items(path, new)
    except ConfigError as exc:
        fail(exc, 2)
    typer.echo(f"{path}: {len(new)} feed source(s) added")


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts)) if ts else "-"


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

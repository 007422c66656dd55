"""Key names are a data format: the strings earlier versions wrote must stay, so Redis data stays readable."""

from __future__ import annotations

from monitor.store import Keys


def test_key_strings_are_the_ones_already_in_redis():
    k = Keys("monitor:")
    assert [k.due, k.feed("f1"), k.feeds, k.state_marker, k.seen_urls("0a")] == [
        "monitor:{feeds}:due", "monitor:{feeds}:feed:f1", "monitor:{feeds}:all", "monitor:{feeds}:epoch",
        "monitor:seen:url:0a"]
    assert [k.host_slots("a.org:443"), k.host_hold("a.org:443")] == [
        "monitor:{host:a.org:443}:slots", "monitor:{host:a.org:443}:hold"]
    assert [k.story_fingerprint("ab"), k.story_fingerprint(""), k.story_band("0:ff"), k.story("s1"), k.story(),
            k.story_members("s1")] == [
        "monitor:{stories}:fp:ab", "monitor:{stories}:fp:-", "monitor:{stories}:b:0:ff", "monitor:{stories}:story:s1",
        "monitor:{stories}:story:", "monitor:{stories}:story:s1:members"]
    assert [k.archived("h"), k.archive_index, k.archive_hour(491000), k.archive_hours, k.matched("h"),
            k.source_articles("f1")] == [
        "monitor:archive:h", "monitor:archive:by-time", "monitor:archive:t:491000", "monitor:archive:hours",
        "monitor:matched:h", "monitor:articles:f1"]
    assert [k.ops_marker(kind, "f1") for kind in ("failing", "alerted", "articles")] == [
        "monitor:ops:failing:f1", "monitor:ops:alerted:f1", "monitor:ops:articles:f1"]
    assert [k.stream("entries"), k.stream_dead("entries"), k.stream_errors("entries")] == [
        "monitor:stream:{entries}", "monitor:stream:{entries}:dead", "monitor:stream:{entries}:errors"]
    a = k.alerts
    assert [a.once("d"), a.story("b"), a.alert("x"), a.deliveries("x"), a.inflight("x", "c"), a.index, a.due("c"),
            a.held("c"), a.held_due("c"), a.digest_items("g"), a.digests_open, a.digest_seq, a.unpublished,
            a.throttle("c", "r"), a.sources("b"), a.source_names("b")] == [
        "monitor:{alerts}:once:d", "monitor:{alerts}:story:b", "monitor:{alerts}:alert:x", "monitor:{alerts}:deliv:x",
        "monitor:{alerts}:sending:x:c", "monitor:{alerts}:index", "monitor:{alerts}:due:c", "monitor:{alerts}:held:c",
        "monitor:{alerts}:held-due:c", "monitor:{alerts}:digest:g", "monitor:{alerts}:digests-open",
        "monitor:{alerts}:digest-seq", "monitor:{alerts}:unpublished", "monitor:{alerts}:throttle:c:r",
        "monitor:{alerts}:sources:b", "monitor:{alerts}:srcname:b"]

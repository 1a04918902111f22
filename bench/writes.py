"""Concurrent API writes during the chaos run, and the ledger that checks none was lost.

One thread adds and deletes cameras; one thread per edited field edits that field of
random live cameras, so edits of different fields of one row race each other and race
its deletion. Cameras are added as a VMS adds them, with an access token (minted
beforehand; a token is used again once its camera's delete was answered). Every answer
is written in the ledger; at the end the camera table must hold every acknowledged add
and edit and no acknowledged delete.

A request refused at connect (the web server was down) did nothing. A request sent but
never answered may or may not have happened: its value is then accepted too.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from bench.gateway import NO_ANSWER, refused

# Fields the editors change, one thread each, and the value of the n-th edit.
EDITS: dict[str, Callable[[int], object]] = {
    "serial": lambda n: f"serial-{n}",
    "username": lambda n: f"user-{n}",
    "http_port": lambda n: 1024 + n % 60000,  # the camera's http forward: a tunnel restart
}


@dataclass
class Entry:
    """What the table must say about one camera the writers created."""

    mac: str  # set by the add and never edited: how a row is recognised
    token: str
    camera_id: int | None = None  # None while the add has had no answer
    added: bool = False  # acknowledged (201)
    deleted: str = ""  # "" (not deleted), "acked" or "maybe" (sent, no answer)
    values: dict[str, set] = field(default_factory=dict)  # field: the values it may hold
    settled: dict[str, bool] = field(default_factory=dict)  # field: no unanswered edit yet
    edit_404: bool = False  # an edit was answered 404: only a delete may explain it


@dataclass
class Verdict:
    adds_missing: list[str] = field(default_factory=list)
    edits_lost: list[str] = field(default_factory=list)
    deletes_back: list[str] = field(default_factory=list)
    strangers: list[str] = field(default_factory=list)  # rows no write explains
    wrong_404s: list[str] = field(default_factory=list)  # edits of a live camera answered 404

    @property
    def rows_lost(self) -> int:
        return len(self.adds_missing) + len(self.edits_lost) + len(self.deletes_back)


class Ledger:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[Entry] = []
        self.answers: Counter = Counter()  # "add 201", "edit refused", ...

    def added(self, entry: Entry, body: dict) -> None:
        entry.camera_id, entry.added = body["camera_id"], True
        entry.values = {name: {body[name]} for name in EDITS}
        entry.settled = {name: True for name in EDITS}

    def edited(self, entry: Entry, name: str, value, answered: bool) -> None:
        # Answered: the value is in. Unanswered: it may be; an answered edit after an
        # unanswered one may still be overtaken by it, so both stay possible.
        if answered and entry.settled[name]:
            entry.values[name] = {value}
        else:
            entry.values[name].add(value)
            entry.settled[name] = entry.settled[name] and answered

    def check(self, rows: list[dict], others: set[int]) -> Verdict:
        """``rows``: GET /api/cameras/ at the end; ``others``: ids the writers never made."""
        verdict = Verdict()
        by_id = {row["camera_id"]: row for row in rows}
        explained = set(others)
        for entry in self.entries:
            row = by_id.get(entry.camera_id) if entry.camera_id is not None else None
            if row is None and not entry.added:  # an unanswered add: look for its row by mac
                row = next((r for r in rows if r.get("mac") == entry.mac), None)
            if row is not None:
                explained.add(row["camera_id"])
            if entry.deleted == "acked":
                if row is not None:
                    verdict.deletes_back.append(f"camera {entry.camera_id} is back after its delete was answered 204")
            elif entry.added and not entry.deleted and row is None:
                verdict.adds_missing.append(f"camera {entry.camera_id} (added, answered 201) is gone")
            elif entry.added and row is not None:
                if entry.edit_404 and not entry.deleted:
                    verdict.wrong_404s.append(f"camera {entry.camera_id}: an edit was answered 404, yet it was never deleted")
                for name, possible in entry.values.items():
                    if row.get(name) not in possible:
                        verdict.edits_lost.append(
                            f"camera {entry.camera_id}: {name} is {row.get(name)!r}, acknowledged {sorted(map(str, possible))}")
        verdict.strangers = [f"camera {i}" for i in sorted(set(by_id) - explained)]
        return verdict


class Writers:
    """The writer threads; ``api`` is Gateway.api (method, path, body) -> (status, body),
    ``tokens`` access tokens of distinct camids, more than ``pool``."""

    def __init__(self, api, pool: int, tokens: list[str], pause_s: float = 0.05) -> None:
        self.api, self.pool, self.pause_s = api, pool, pause_s
        self.free_tokens = list(tokens)  # only the add-and-delete thread takes and gives them
        self.ledger = Ledger()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self._numbers = itertools.count(1)
        self.failures: list[str] = []  # a thread that died: the run cannot vouch for its writes

    def start(self) -> None:
        targets = [("adds-deletes", self._add_and_delete)] + [(f"edits-{name}", lambda n=name: self._edit(n)) for name in EDITS]
        for name, target in targets:
            thread = threading.Thread(target=self._guarded, args=(name, target), name=name, daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _guarded(self, name: str, target) -> None:
        try:
            target()
        except Exception as error:  # noqa: BLE001 (reported in the table)
            self.failures.append(f"{name}: {type(error).__name__}: {error}")

    def _call(self, kind: str, method: str, path: str, body=None) -> tuple[str, int, object]:
        """("answered", status, body), ("refused", 0, None) or ("unanswered", 0, None)."""
        try:
            status, answer = self.api(method, path, body)
        except NO_ANSWER as error:
            outcome, status, answer = "refused" if refused(error) else "unanswered", 0, None
        else:
            outcome = "answered"
        with self.ledger.lock:
            self.ledger.answers[f"{kind} {status if outcome == 'answered' else outcome}"] += 1
        return outcome, status, answer

    def _live(self) -> list[Entry]:
        with self.ledger.lock:
            return [e for e in self.ledger.entries if e.added and not e.deleted]

    def _add_and_delete(self) -> None:
        while not self.stopping.wait(self.pause_s):
            live = self._live()
            if len(live) >= self.pool or not self.free_tokens or (live and random.random() < 0.3):
                if not live:
                    continue
                entry = random.choice(live)
                outcome, status, _ = self._call("delete", "DELETE", f"/api/cameras/{entry.camera_id}/")
                with self.ledger.lock:
                    if outcome == "unanswered" or (outcome == "answered" and status == 204):
                        entry.deleted = "maybe" if outcome == "unanswered" else "acked"
                if entry.deleted == "acked":
                    self.free_tokens.append(entry.token)
                continue
            entry = Entry(mac=f"chaos-{next(self._numbers)}", token=self.free_tokens.pop(0))
            with self.ledger.lock:
                self.ledger.entries.append(entry)
            outcome, status, body = self._call("add", "POST", "/api/add-camera/", {
                "ip": "127.0.0.1", "rtsp_port": 9, "http_port": 80, "mac": entry.mac, "serial": entry.mac, "username": "",
                "access_token": entry.token,
            })
            with self.ledger.lock:
                if outcome == "answered" and status == 201:
                    self.ledger.added(entry, body)
                elif outcome == "refused":
                    self.ledger.entries.remove(entry)
            if outcome == "refused":
                self.free_tokens.append(entry.token)

    def _edit(self, name: str) -> None:
        while not self.stopping.wait(self.pause_s):
            live = self._live()
            if not live:
                continue
            entry, value = random.choice(live), EDITS[name](next(self._numbers))
            outcome, status, _ = self._call("edit", "POST", f"/api/edit-camera/{entry.camera_id}/", {name: value})
            with self.ledger.lock:
                if outcome == "unanswered" or (outcome == "answered" and status == 200):
                    self.ledger.edited(entry, name, value, answered=outcome == "answered")
                elif outcome == "answered" and status == 404:
                    # Only a racing delete may explain it; its own answer may not be in
                    # yet, so the ledger's check looks at it at the end.
                    entry.edit_404 = True

    def summary(self) -> str:
        a = self.ledger.answers
        return (f"adds {a['add 201']}, edits {a['edit 200']}, deletes {a['delete 204']} acknowledged; "
                f"edits of deleted cameras 404: {a['edit 404']}; refused (web down): "
                f"{sum(v for k, v in a.items() if k.endswith('refused'))}; unanswered: "
                f"{sum(v for k, v in a.items() if k.endswith('unanswered'))}")

    def unexpected_answers(self) -> dict[str, int]:
        expected = {"add 201", "edit 200", "edit 404", "delete 204"}
        return {k: v for k, v in self.ledger.answers.items() if k not in expected and not k.endswith(("refused", "unanswered"))}

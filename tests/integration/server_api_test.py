"""The server API of `switchboard serve` (docs/protocol.md, "Server API"):
broadcast, batch, subscribe / unsubscribe / disconnect of a user's or a
client's connections, presence, presence_stats, history, history_remove,
channels with a pattern and info — through POST /api/<method> and POST /api,
with their errors (400 naming the field, 401, 404 unknown method, 405 ...).

Two groups: one node on the memory broker, and two nodes on one Redis (a
redis-server the test starts on a free port) where the actions must reach a
user connected to the other node and `info` must list both nodes.

Run: /usr/bin/python3 server_api_test.py path/to/switchboard
"""

import asyncio
import json
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from serve_test import (API_KEY, Session, ServeServer, ServerTestCase, base_config,  # noqa: E402
                        close_code_of, connect_ws, http_request, run, slow, token)
from redis_cluster_test import RedisServer, node_config, wait_health  # noqa: E402

import websockets  # noqa: E402


def api(port, method, params=None, key=API_KEY, raw=None):
    """POST /api/<method>: (status, parsed answer)."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-API-Key"] = key
    body = raw if raw is not None else json.dumps(params if params is not None else {})
    status, _, answer = http_request(port, "POST", "/api/" + method, body, headers)
    return status, json.loads(answer) if answer else None


def api_generic(port, obj, key=API_KEY):
    """POST /api with {"method", "params"}."""
    headers = {"Content-Type": "application/json", "X-API-Key": key}
    status, _, answer = http_request(port, "POST", "/api", json.dumps(obj), headers)
    return status, json.loads(answer) if answer else None


async def user_session(port, user, channels=()):
    ws = await connect_ws(port, token(sub=user))
    s = Session(ws)
    for ch in channels:
        reply = await s.request("subscribe", channel=ch)
        assert "result" in reply, reply
    return s


class Methods(ServerTestCase):
    CONFIG = {"api": {"key": API_KEY}}

    def error_of(self, status, answer, code, contains):
        self.assertEqual(status, code, answer)
        self.assertEqual(answer["error"]["code"], code, answer)
        self.assertIn(contains, answer["error"]["message"])

    # --- errors shared by every method ---------------------------------------------

    def test_auth_unknown_method_and_bad_bodies(self):
        status, answer = api(self.server.port, "history", {"channel": "chat:x"}, key=None)
        self.error_of(status, answer, 401, "missing X-API-Key")
        status, answer = api(self.server.port, "history", {"channel": "chat:x"}, key="nope")
        self.error_of(status, answer, 401, "bad API key")
        status, answer = api_generic(self.server.port, {"method": "frobnicate", "params": {}})
        self.error_of(status, answer, 404, "unknown method: frobnicate")
        status, answer = api(self.server.port, "history", raw="[1,2]")
        self.error_of(status, answer, 400, "must be a JSON object")
        status, answer = api(self.server.port, "history", {"chanel": "chat:x"})
        self.error_of(status, answer, 400, "unknown parameter: chanel")
        status, answer = api(self.server.port, "history", {"channel": 7})
        self.error_of(status, answer, 400, "channel must be a string")
        status, answer = api(self.server.port, "history", {})
        self.error_of(status, answer, 400, "channel is required")
        status, answer = api(self.server.port, "history", {"channel": "nope:x"})
        self.error_of(status, answer, 404, "unknown namespace: nope")
        status, answer = api(self.server.port, "history", {"channel": "bare:x"})
        self.error_of(status, answer, 405, "history is off")
        status, answer = api(self.server.port, "presence", {"channel": "bare:x"})
        self.error_of(status, answer, 405, "presence is off")
        status, answer = api(self.server.port, "disconnect", {"code": 4000})
        self.error_of(status, answer, 400, "user or client is required")
        status, answer = api(self.server.port, "disconnect", {"user": "u", "code": 1006})
        self.error_of(status, answer, 400, "code must be 1000 or 3000-4999")
        status, answer = api(self.server.port, "disconnect", {"user": "u", "reason": "x" * 124})
        self.error_of(status, answer, 400, "reason is over 123 bytes")
        status, answer = api_generic(self.server.port, {"method": "info", "params": []})
        self.error_of(status, answer, 400, "params must be an object")

    # --- publishing ------------------------------------------------------------------

    def test_broadcast_publishes_once_to_each_channel(self):
        async def go():
            a = await user_session(self.server.port, "bc-a", ["chat:bc1"])
            b = await user_session(self.server.port, "bc-b", ["chat:bc2"])
            try:
                status, answer = api(self.server.port, "broadcast",
                                     {"channels": ["chat:bc1", "chat:bc2"], "data": {"n": 1}})
                self.assertEqual(status, 200, answer)
                self.assertEqual([r["channel"] for r in answer["responses"]],
                                 ["chat:bc1", "chat:bc2"])
                self.assertTrue(all(r["offset"] == 1 for r in answer["responses"]), answer)
                self.assertEqual((await a.push("message", "chat:bc1"))["data"], {"n": 1})
                self.assertEqual((await b.push("message", "chat:bc2"))["data"], {"n": 1})
                # A bad name anywhere publishes nothing, and the error names it.
                status, answer = api(self.server.port, "broadcast",
                                     {"channels": ["chat:bc1", "bad name"], "data": 2})
                self.error_of(status, answer, 422, "channels[1]")
                status, answer = api(self.server.port, "history", {"channel": "chat:bc1"})
                self.assertEqual(answer["offset"], 1, answer)
                status, answer = api(self.server.port, "broadcast", {"channels": [], "data": 1})
                self.error_of(status, answer, 400, "channels is empty")
                status, answer = api(self.server.port, "broadcast", {"channels": ["chat:bc1"]})
                self.error_of(status, answer, 400, "no data")
            finally:
                await a.ws.close()
                await b.ws.close()
        run(go())

    def test_batch_runs_in_order_and_answers_each(self):
        cmds = [
            {"method": "publish", "params": {"channel": "chat:batch", "data": "one"}},
            {"method": "publish", "params": {"channel": "chat:batch", "data": "two"}},
            {"method": "history", "params": {"channel": "chat:batch"}},
            {"method": "nope"},
            {"method": "history_remove", "params": {"channel": "chat:batch"}},
            {"method": "history", "params": {"channel": "chat:batch"}},
            {"method": "publish", "params": {"channel": "chat:batch"}},
        ]
        status, answer = api(self.server.port, "batch", {"commands": cmds})
        self.assertEqual(status, 200, answer)
        r = answer["replies"]
        self.assertEqual(len(r), len(cmds))
        self.assertEqual(r[0]["result"]["offset"], 1)
        self.assertEqual(r[1]["result"]["offset"], 2)
        self.assertEqual([p["data"] for p in r[2]["result"]["publications"]], ["one", "two"])
        self.assertEqual(r[3]["error"]["code"], 404)
        self.assertEqual(r[4], {"result": {}})
        self.assertEqual(r[5]["result"]["publications"], [])
        # Nobody subscribed and nothing kept: the memory broker lets the channel go, so
        # it comes back with a new epoch (a recovery from before is told so).
        self.assertNotEqual(r[5]["result"]["epoch"], r[2]["result"]["epoch"])
        self.assertEqual(r[6]["error"]["code"], 400)
        # The same through POST /api.
        status, answer = api_generic(self.server.port, {"method": "batch", "params": {
            "commands": [{"method": "publish", "params": {"channel": "chat:batch", "data": 3}}]}})
        self.assertIn("offset", answer["replies"][0]["result"], answer)
        # Malformed batches are refused whole, naming the command.
        status, answer = api(self.server.port, "batch", {"commands": [{"method": "batch"}]})
        self.error_of(status, answer, 400, "commands[0]: a batch cannot hold a batch")
        status, answer = api(self.server.port, "batch", {"commands": [{"params": {}}]})
        self.error_of(status, answer, 400, "commands[0].method must be a string")
        status, answer = api(self.server.port, "batch",
                             {"commands": [{"method": "info"}] * 1001})
        self.error_of(status, answer, 413, "over 1000")

    # --- history ---------------------------------------------------------------------

    def test_history_limit_since_and_remove(self):
        for i in range(5):
            self.assertEqual(api_generic(self.server.port, {"method": "publish", "params": {
                "channel": "chat:hist", "data": i}})[0], 200)
        status, answer = api(self.server.port, "history", {"channel": "chat:hist", "limit": 2})
        self.assertEqual([p["data"] for p in answer["publications"]], [3, 4], answer)
        epoch = answer["epoch"]
        status, answer = api(self.server.port, "history",
                             {"channel": "chat:hist", "since": {"epoch": epoch, "offset": 3}})
        self.assertTrue(answer["recovered"], answer)
        self.assertEqual([p["offset"] for p in answer["publications"]], [4, 5])
        status, answer = api(self.server.port, "history", {"channel": "chat:hist", "limit": 0})
        self.error_of(status, answer, 400, "limit must be a positive integer")
        status, answer = api(self.server.port, "history_remove", {"channel": "chat:hist"})
        self.assertEqual((status, answer), (200, {}))
        status, answer = api(self.server.port, "history",
                             {"channel": "chat:hist", "since": {"epoch": epoch, "offset": 3}})
        self.assertEqual((answer["recovered"], answer["publications"]), (False, []), answer)

    # --- presence and channels -------------------------------------------------------

    def test_presence_stats_and_channels_with_a_pattern(self):
        async def go():
            a1 = await user_session(self.server.port, "pres-a", ["chat:room1"])
            a2 = await user_session(self.server.port, "pres-a", ["chat:room1"])
            b = await user_session(self.server.port, "pres-b", ["chat:room1", "chat:other"])
            try:
                status, answer = api(self.server.port, "presence", {"channel": "chat:room1"})
                self.assertEqual(status, 200, answer)
                self.assertEqual(answer["count"], 3)
                self.assertEqual(sorted(c["user"] for c in answer["clients"]),
                                 ["pres-a", "pres-a", "pres-b"])
                status, answer = api(self.server.port, "presence",
                                     {"channel": "chat:room1", "limit": 2})
                self.assertEqual(len(answer["clients"]), 2)
                self.assertIn("cursor", answer)
                status, answer = api(self.server.port, "presence_stats",
                                     {"channel": "chat:room1"})
                self.assertEqual(answer, {"channel": "chat:room1", "clients": 3, "users": 2})
                status, answer = api(self.server.port, "channels", {"pattern": "chat:room*"})
                self.assertEqual(status, 200, answer)
                names = [c["channel"] for c in answer["channels"]]
                self.assertIn("chat:room1", names)
                self.assertNotIn("chat:other", names)
                room = [c for c in answer["channels"] if c["channel"] == "chat:room1"][0]
                self.assertEqual(room["subscribers"], 3)
                status, answer = api(self.server.port, "channels", {"pattern": "chat:r?om1"})
                self.assertEqual([c["channel"] for c in answer["channels"]], ["chat:room1"])
                status, answer = api(self.server.port, "channels", {"pattern": 3})
                self.error_of(status, answer, 400, "pattern must be a string")
            finally:
                for s in (a1, a2, b):
                    await s.ws.close()
        run(go())

    def test_info_lists_this_node(self):
        status, answer = api(self.server.port, "info")
        self.assertEqual(status, 200, answer)
        self.assertEqual(len(answer["nodes"]), 1, answer)
        node = answer["nodes"][0]
        for key in ("node", "uptime", "connections", "users", "subscriptions", "channels",
                    "messages_in", "messages_out", "publications", "backpressure_drops"):
            self.assertIn(key, node)

    # --- actions on connections ------------------------------------------------------

    def test_server_side_subscribe_and_unsubscribe_push_to_the_client(self):
        async def go():
            s = await user_session(self.server.port, "sub-u")
            other = await user_session(self.server.port, "sub-other")
            try:
                api(self.server.port, "batch", {"commands": [
                    {"method": "publish", "params": {"channel": "chat:srv", "data": "before"}}]})
                status, answer = api(self.server.port, "subscribe",
                                     {"user": "sub-u", "channel": "chat:srv"})
                self.assertEqual((status, answer), (200, {}))
                push = await s.push("subscribe", "chat:srv")
                self.assertEqual(push["offset"], 1, push)
                self.assertIn("epoch", push)
                api(self.server.port, "batch", {"commands": [
                    {"method": "publish", "params": {"channel": "chat:srv", "data": "after"}}]})
                msg = await s.push("message", "chat:srv")
                self.assertEqual((msg["data"], msg["offset"]), ("after", 2))
                # The client sees itself subscribed: its own subscribe is a conflict.
                reply = await s.request("subscribe", channel="chat:srv")
                self.assertEqual(reply["error"]["code"], 409, reply)
                status, answer = api(self.server.port, "unsubscribe",
                                     {"user": "sub-u", "channel": "chat:srv"})
                self.assertEqual(status, 200, answer)
                push = await s.push("unsubscribe", "chat:srv")
                self.assertEqual(push["reason"], "unsubscribed by the server")
                reply = await s.request("unsubscribe", channel="chat:srv")
                self.assertEqual(reply["error"]["code"], 404, reply)
                await other.quiet(0.3)
                self.assertFalse([m for m in other.inbox if m.get("channel") == "chat:srv"])
            finally:
                await s.ws.close()
                await other.ws.close()
        run(go())

    def test_disconnect_a_user_or_one_client_with_a_code(self):
        async def go():
            a1 = await user_session(self.server.port, "dc-a")
            a2 = await user_session(self.server.port, "dc-a")
            b = await user_session(self.server.port, "dc-b")
            try:
                # One client by id: only it goes.
                c2 = await a2.request("subscribe", channel="chat:dc")
                self.assertIn("result", c2)
                status, answer = api(self.server.port, "presence", {"channel": "chat:dc"})
                client2 = answer["clients"][0]["client"]
                status, answer = api(self.server.port, "disconnect",
                                     {"client": client2, "code": 4100, "reason": "bye"})
                self.assertEqual((status, answer), (200, {}))
                self.assertEqual(await close_code_of(a2.ws), 4100)
                self.assertEqual(a2.ws.close_reason, "bye")
                self.assertIn("result", await a1.request("ping"))
                # A user: every connection of it, default code 4003.
                status, answer = api(self.server.port, "disconnect", {"user": "dc-a"})
                self.assertEqual(status, 200)
                self.assertEqual(await close_code_of(a1.ws), 4003)
                self.assertIn("result", await b.request("ping"))
            finally:
                for s in (a1, a2, b):
                    await s.ws.close()
        run(go())


def basic(user, password):
    import base64
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


class Admin(ServerTestCase):
    """The /admin dashboard's authentication (docs/admin.md): never anonymous."""

    CONFIG = {"api": {"key": API_KEY}, "admin": {"enabled": True, "password": "admin-pw"}}

    def test_every_route_needs_the_password(self):
        port = self.server.port
        for method, path in (("GET", "/admin"), ("GET", "/admin/"), ("GET", "/admin/admin.js"),
                             ("GET", "/admin/ticket"), ("POST", "/admin/api/info")):
            for headers in ({}, basic("op", "wrong"), basic("op", API_KEY),
                            {"Authorization": "Bearer admin-pw"},
                            {"Authorization": "Basic !!notbase64"}):
                status, h, body = http_request(port, method, path, b"{}", headers)
                self.assertEqual(status, 401, (method, path, headers, body))
                self.assertTrue(h.get("www-authenticate", "").startswith("Basic realm="), h)
            status, h, body = http_request(port, method, path, b"{}", basic("anyone", "admin-pw"))
            self.assertEqual(status, 200, (method, path, body))
        status, _, body = http_request(port, "GET", "/admin", None, basic("op", "admin-pw"))
        self.assertIn(b"/admin/admin.js", body)

    def test_the_stream_needs_a_fresh_one_use_ticket(self):
        port = self.server.port

        async def go():
            for query in ("", "?ticket=", "?ticket=0123456789abcdef0123456789abcdef"):
                with self.assertRaises(websockets.InvalidStatusCode) as e:
                    async with connect_ws(port, path="/admin/ws" + query, subprotocols=()):
                        pass
                self.assertEqual(e.exception.status_code, 401)
            status, _, body = http_request(port, "GET", "/admin/ticket", None,
                                           basic("op", "admin-pw"))
            ticket = json.loads(body)["ticket"]
            async with connect_ws(port, path="/admin/ws?ticket=" + ticket, subprotocols=()) as ws:
                frame = json.loads(await asyncio.wait_for(ws.recv(), slow(5)))
                self.assertEqual(frame["type"], "stats")
                self.assertEqual(len(frame["info"]["nodes"]), 1, frame)
                self.assertIn("channels", frame)
            # One use: the same ticket again is refused.
            with self.assertRaises(websockets.InvalidStatusCode) as e:
                async with connect_ws(port, path="/admin/ws?ticket=" + ticket, subprotocols=()):
                    pass
            self.assertEqual(e.exception.status_code, 401)
        run(go())


class AdminConfig(unittest.TestCase):
    def test_off_by_default_own_listener_and_never_anonymous(self):
        plain = ServeServer(base_config(**{"api": {"key": API_KEY}}))
        try:
            status, _, _ = http_request(plain.port, "GET", "/admin", None, basic("op", API_KEY))
            self.assertEqual(status, 404)
        finally:
            plain.cleanup()
        # [admin] without password uses the api key; on its own listener only.
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            admin_port = s.getsockname()[1]
        own = ServeServer(base_config(**{"api": {"key": API_KEY}, "admin": {
            "enabled": True, "host": "127.0.0.1", "port": admin_port}}))
        try:
            status, _, _ = http_request(own.port, "GET", "/admin", None, basic("op", API_KEY))
            self.assertEqual(status, 404)
            status, _, _ = http_request(admin_port, "GET", "/admin", None, basic("op", API_KEY))
            self.assertEqual(status, 200)
            status, _, _ = http_request(admin_port, "GET", "/admin", None)
            self.assertEqual(status, 401)
            status, _, body = http_request(admin_port, "POST", "/admin/api/info", b"{}",
                                           basic("op", API_KEY))
            self.assertEqual(status, 200, body)
        finally:
            code, _ = own.stop(timeout=10)
            own.cleanup()
            self.assertEqual(code, 0)
        # Enabled with neither a password nor an API key: refused at start (exit 2).
        with self.assertRaises(harness.ServerError) as e:
            ServeServer(base_config(**{"admin": {"enabled": True}}))
        self.assertIn("never anonymous", str(e.exception))


class JournalRemoval(unittest.TestCase):
    """history_remove with [history] journal: kill -9 right after, and the restart does
    not replay what was removed."""

    def test_removed_history_stays_removed_after_a_crash(self):
        import tempfile
        import shutil
        state = tempfile.mkdtemp(prefix="switchboard-api-journal-")
        config = base_config(**{"api": {"key": API_KEY}, "history": {
            "snapshot_file": os.path.join(state, "snap"),
            "journal": os.path.join(state, "journal"), "journal_fsync": "always"}})
        try:
            first = ServeServer(config)
            try:
                for i in range(3):
                    status, answer = api_generic(first.port, {"method": "publish", "params": {
                        "channel": "chat:kept", "data": i}})
                    self.assertEqual(status, 200, answer)
                    status, answer = api_generic(first.port, {"method": "publish", "params": {
                        "channel": "chat:gone", "data": i}})
                    self.assertEqual(status, 200, answer)
                self.assertEqual(api(first.port, "history_remove", {"channel": "chat:gone"}),
                                 (200, {}))
                first.kill()
            finally:
                first.cleanup()
            second = ServeServer(config)
            try:
                status, answer = api(second.port, "history", {"channel": "chat:kept"})
                self.assertEqual([p["data"] for p in answer["publications"]], [0, 1, 2], answer)
                status, answer = api(second.port, "history", {"channel": "chat:gone"})
                self.assertEqual(answer["publications"], [], answer)
            finally:
                second.cleanup()
        finally:
            shutil.rmtree(state, ignore_errors=True)


class Cluster(unittest.TestCase):
    """Two nodes on one Redis: actions and info reach across nodes."""

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()
        cls.nodes = []
        try:
            for _ in range(2):
                cls.nodes.append(ServeServer(node_config(cls.redis.url, **{
                    "auth": {"allow_anonymous": False},
                    "admin": {"enabled": True, "password": "admin-pw"}})))
            for n in cls.nodes:
                wait_health(n.port, 200)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for n in cls.nodes:
                code, _ = n.stop(timeout=10)
                if code != 0:
                    raise AssertionError("serve exited with %r\n%s" % (code, n.stderr_text()))
        finally:
            for n in cls.nodes:
                n.cleanup()
            cls.redis.cleanup()

    def test_actions_reach_a_user_on_the_other_node(self):
        a, b = self.nodes[0].port, self.nodes[1].port

        async def go():
            on_b = await user_session(b, "cross-u")
            on_a = await user_session(a, "cross-u")
            try:
                status, answer = api(a, "subscribe", {"user": "cross-u", "channel": "chat:x1"})
                self.assertEqual(status, 200, answer)
                self.assertIn("epoch", await on_b.push("subscribe", "chat:x1"))
                self.assertIn("epoch", await on_a.push("subscribe", "chat:x1"))
                status, answer = api(a, "broadcast", {"channels": ["chat:x1"], "data": "hi"})
                self.assertEqual(status, 200, answer)
                self.assertEqual((await on_b.push("message", "chat:x1"))["data"], "hi")
                # presence_stats sees both connections, wherever they are.
                deadline = time.monotonic() + slow(5)
                while True:
                    status, answer = api(b, "presence_stats", {"channel": "chat:x1"})
                    if answer.get("clients") == 2 or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.05)
                self.assertEqual(answer, {"channel": "chat:x1", "clients": 2, "users": 1})
                status, answer = api(a, "unsubscribe", {"user": "cross-u", "channel": "chat:x1"})
                self.assertEqual(status, 200)
                await on_b.push("unsubscribe", "chat:x1")
                status, answer = api(a, "disconnect", {"user": "cross-u", "code": 4321})
                self.assertEqual(status, 200)
                self.assertEqual(await close_code_of(on_b.ws), 4321)
                self.assertEqual(await close_code_of(on_a.ws), 4321)
            finally:
                await on_a.ws.close()
                await on_b.ws.close()
        run(go())

    def test_info_lists_every_node_and_history_remove_is_shared(self):
        a, b = self.nodes[0].port, self.nodes[1].port
        deadline = time.monotonic() + slow(5)
        while True:
            status, answer = api(a, "info")
            if len(answer.get("nodes", [])) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(status, 200, answer)
        self.assertEqual(len(answer["nodes"]), 2, answer)
        self.assertEqual(len({n["node"] for n in answer["nodes"]}), 2)
        for i in range(3):
            api(a, "batch", {"commands": [
                {"method": "publish", "params": {"channel": "chat:shared", "data": i}}]})
        status, answer = api(b, "history", {"channel": "chat:shared"})
        self.assertEqual(len(answer["publications"]), 3, answer)
        self.assertEqual(api(b, "history_remove", {"channel": "chat:shared"}), (200, {}))
        status, answer = api(a, "history", {"channel": "chat:shared"})
        self.assertEqual((answer["publications"], answer["offset"]), ([], 3), answer)
        status, answer = api(a, "channels", {"pattern": "chat:shar*"})
        self.assertEqual([c["channel"] for c in answer["channels"]], ["chat:shared"], answer)


    def test_top_channels_count_subscribers_on_every_node(self):
        # info lists each node's most subscribed channels; the dashboard of either node
        # shows their sum (docs/admin.md): 1 subscriber on A and 2 on B make 3.
        a, b = self.nodes[0].port, self.nodes[1].port

        async def go():
            sessions = [await user_session(a, "top-a", ["chat:top"]),
                        await user_session(b, "top-b1", ["chat:top", "chat:only-b"]),
                        await user_session(b, "top-b2", ["chat:top"])]
            try:
                api(a, "publish", {"channel": "chat:top", "data": 1})
                api(a, "publish", {"channel": "chat:only-b", "data": 1})
                deadline = time.monotonic() + slow(5)
                while True:
                    status, answer = api(a, "info")
                    tops = {n["node"]: n.get("top_channels") for n in answer.get("nodes", [])}
                    if (len(tops) == 2 and all(tops.values())) or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.1)
                self.assertEqual(sorted(map(lambda t: sorted(map(
                    lambda c: (c["channel"], c["subscribers"]), t)), tops.values())),
                    [[("chat:only-b", 1), ("chat:top", 2)], [("chat:top", 1)]], answer)
                status, _, body = http_request(a, "GET", "/admin/ticket", None,
                                               basic("op", "admin-pw"))
                self.assertEqual(status, 200, body)
                ticket = json.loads(body)["ticket"]
                async with connect_ws(a, path="/admin/ws?ticket=" + ticket,
                                      subprotocols=()) as ws:
                    deadline = time.monotonic() + slow(5)
                    while True:
                        frame = json.loads(await asyncio.wait_for(ws.recv(), slow(5)))
                        rows = {c["channel"]: c["subscribers"] for c in frame["channels"]}
                        if rows.get("chat:top") == 3 or time.monotonic() > deadline:
                            break
                    self.assertEqual(rows.get("chat:top"), 3, frame)
                    self.assertEqual(rows.get("chat:only-b"), 1, frame)
                    self.assertEqual([c["channel"] for c in frame["channels"]][:2],
                                     ["chat:top", "chat:only-b"], frame)
            finally:
                for s in sessions:
                    await s.ws.close()
        run(go())


class Shards(unittest.TestCase):
    """Two Redis shards listed in a different order by each node: the server API's keys
    and control channel are found on the same shard by both."""

    def test_actions_and_info_with_shards_in_any_order(self):
        r1, r2 = RedisServer(), RedisServer()
        nodes = []
        try:
            for urls in ([r1.url, r2.url], [r2.url, r1.url]):
                config = node_config(r1.url)
                config["broker"]["urls"] = urls
                nodes.append(ServeServer(config))
            for n in nodes:
                wait_health(n.port, 200)
            a, b = nodes[0].port, nodes[1].port
            deadline = time.monotonic() + slow(5)
            while True:
                status, answer = api(b, "info")
                if len(answer.get("nodes", [])) == 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.assertEqual(len(answer["nodes"]), 2, answer)

            async def go():
                on_b = await user_session(b, "shard-u")
                try:
                    status, answer = api(a, "disconnect", {"user": "shard-u", "code": 4444})
                    self.assertEqual(status, 200, answer)
                    self.assertEqual(await close_code_of(on_b.ws), 4444)
                finally:
                    await on_b.ws.close()
            run(go())
        finally:
            for n in nodes:
                n.cleanup()
            r1.cleanup()
            r2.cleanup()


if __name__ == "__main__":
    harness.main()

"""Who may use the server: loopback without a token, a token otherwise (Bearer header or a one-time login)."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from musimilar.serve.auth import COOKIE_NAME, Access, LoginCodes, is_loopback
from musimilar.serve.run import plan_access
from musimilar.serve.state import ServeOptions

TOKEN = "a-long-test-token"


def test_loopback_is_open_but_only_under_a_local_host_name(served_home, client_for) -> None:
    with client_for(served_home[0]) as client:
        assert client.get("/api/tracks").status_code == 200
        assert client.get("/api/tracks", headers={"Host": "localhost:8765"}).status_code == 200
        rebound = client.get("/api/tracks", headers={"Host": "evil.example:8765"})
        assert rebound.status_code == 421 and "localhost" in rebound.json()["error"]
        cross_site = client.post("/api/radio", json={"seeds": [1]}, headers={"Origin": "http://evil.example"})
        assert cross_site.status_code == 403


def test_a_token_is_needed_when_one_is_set(served_home, client_for) -> None:
    access = Access(token=TOKEN)
    with client_for(served_home[0], access=access) as client:
        refused = client.get("/api/tracks", headers={"Host": "music.lan:8765"})
        assert refused.status_code == 401 and set(refused.json()) == {"error"}
        assert client.get("/").status_code == 401
        assert client.get("/api/tracks", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/tracks", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_a_one_time_login_url_sets_the_cookie_once(served_home, client_for) -> None:
    access = Access(token=TOKEN)
    code = access.new_login_code()
    with client_for(served_home[0], access=access) as client:
        login = client.get(f"/login/{code}", follow_redirects=False)
        assert login.status_code == 303 and login.cookies[COOKIE_NAME] == TOKEN
        assert "httponly" in login.headers["set-cookie"].lower()
        assert client.get("/api/tracks").status_code == 200  # the client keeps the cookie
        client.cookies.clear()
        assert client.get(f"/login/{code}", follow_redirects=False).status_code == 401
        assert client.get("/api/tracks").status_code == 401


def redeem_in(folder: Path, code: str) -> bool:
    return LoginCodes(folder).redeem(code)


def test_a_login_code_is_redeemed_once_whichever_process_offers_it() -> None:
    codes = LoginCodes()
    code = codes.new()
    assert codes.folder.stat().st_mode & 0o777 == 0o700
    assert code not in [p.name for p in codes.folder.iterdir()]  # files are named by the code's hash
    with ProcessPoolExecutor(4, mp_context=get_context("spawn")) as pool:
        attempts = list(pool.map(redeem_in, [codes.folder] * 8, [code] * 8))
    assert sorted(attempts) == [False] * 7 + [True]
    assert not codes.redeem(code) and not codes.redeem("never-made") and not codes.redeem(f"../{code}")
    other = LoginCodes(codes.folder)  # what a server process sees: it redeems, and never removes the folder
    second = codes.new()
    assert other.redeem(second) and not codes.redeem(second)
    other.remove()
    assert codes.folder.is_dir()
    codes.remove()
    assert not codes.folder.exists()


def test_any_host_but_loopback_gets_a_token() -> None:
    assert plan_access(ServeOptions("127.0.0.1"), require_token=False, environ={}).access.token is None
    remote = plan_access(ServeOptions("0.0.0.0", 9000), require_token=False, environ={})
    assert remote.token_source == "generated" and len(remote.access.token or "") >= 24
    assert remote.open_url.startswith("http://0.0.0.0:9000/login/") and remote.access.token not in remote.open_url
    from_env = plan_access(ServeOptions("::1"), require_token=True, environ={"MUSIMILAR_SERVE_TOKEN": TOKEN})
    assert from_env.access.token == TOKEN and from_env.token_source == "environment"
    assert from_env.base_url == "http://[::1]:8765/"


def test_what_counts_as_loopback() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.4", "::", "example.org"))

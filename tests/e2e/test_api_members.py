"""SPEC API-2: members, Basic auth, tenant isolation, paging (seed 002 shapes)."""
import base64

from apiutil import ISO_US, assert_error, member_key, new_member, psql, psql1, q
from helpers import http

MEMBER_FIELDS = ["id", "state", "appUserId", "appUserName", "appUserProfileImgUrl",
                 "createdAt", "lastModifiedAt"]


def test_create_member_returns_seed_shape_and_creates_an_inactive_key(castgate):
    m = new_member(castgate, "1", "foobar")
    assert list(m.keys()) == MEMBER_FIELDS
    assert m["state"] == "ACTIVE" and m["appUserId"] == "1" and m["appUserName"] == "foobar"
    assert m["appUserProfileImgUrl"] == "https://img.example.com/u.jpg"
    assert ISO_US.match(m["createdAt"]) and ISO_US.match(m["lastModifiedAt"])
    key, prefix, state = psql(f"SELECT stream_key, key_prefix, stream_key_state FROM stream_keys"
                              f" WHERE member_id = {m['id']}")[0]
    assert state == "INACTIVE"
    assert len(key) >= 32 and key.isalnum() and prefix == key[:12]
    k = member_key(castgate, "1")
    assert k["streamKey"] == key and k["streamKeyState"] == "INACTIVE"


def test_duplicate_member_is_409(castgate):
    new_member(castgate, "dup")
    r = castgate.api("POST", "/v2/apps/me/members", {"appUserId": "dup"})
    assert_error(r, 409, "MEMBER_ALREADY_EXISTS")


def test_empty_app_user_id_variants(castgate):
    for body in ({}, {"appUserId": None}, {"appUserId": ""}, {"appUserId": "   "},
                 {"appUserName": "x"}):
        assert_error(castgate.api("POST", "/v2/apps/me/members", body), 400, "EMPTY_APP_USER_ID")


def test_wrong_types_name_the_field(castgate):
    cases = [({"appUserId": 5}, "appUserId"),
             ({"appUserId": "a", "appUserName": 5}, "appUserName"),
             ({"appUserId": "a", "appUserProfileImgUrl": ["x"]}, "appUserProfileImgUrl"),
             ({"appUserId": "a" * 201}, "appUserId")]
    for body, field in cases:
        assert_error(castgate.api("POST", "/v2/apps/me/members", body), 400, "INVALID_PARAMETER", field)


def test_get_patch_and_not_found(castgate):
    new_member(castgate, "p1", "Old")
    r = castgate.api("GET", "/v2/apps/me/members/p1")
    assert r.status == 200 and r.json()["appUserName"] == "Old"
    r = castgate.api("PATCH", "/v2/apps/me/members/p1", {"appUserName": "New", "unknown": {"x": 1}})
    assert r.status == 200, r.body
    m = r.json()
    assert m["appUserName"] == "New"
    assert m["appUserProfileImgUrl"] == "https://img.example.com/u.jpg"  # untouched
    assert m["lastModifiedAt"] >= m["createdAt"]
    r = castgate.api("PATCH", "/v2/apps/me/members/p1", {"appUserProfileImgUrl": None})
    assert r.json()["appUserProfileImgUrl"] is None and r.json()["appUserName"] == "New"
    assert_error(castgate.api("PATCH", "/v2/apps/me/members/p1", {"appUserName": 3}), 400,
                 "INVALID_PARAMETER", "appUserName")
    assert_error(castgate.api("GET", "/v2/apps/me/members/nobody"), 404, "MEMBER_NOT_FOUND")
    assert_error(castgate.api("PATCH", "/v2/apps/me/members/nobody", {"appUserName": "x"}), 404,
                 "MEMBER_NOT_FOUND")


def test_other_apps_members_are_invisible(castgate):
    a = castgate.create_app("tenant-a")
    new_member(castgate, "shared-id", "A's", app=a)
    b = castgate.create_app("tenant-b")
    assert_error(castgate.api("GET", "/v2/apps/me/members/shared-id", app=b), 404, "MEMBER_NOT_FOUND")
    assert castgate.api("GET", "/v2/apps/me/members", app=b).json()["totalElements"] == 0
    assert_error(castgate.api("DELETE", "/v2/apps/me/members/shared-id", app=b), 404, "MEMBER_NOT_FOUND")
    # the same appUserId may exist in another app
    new_member(castgate, "shared-id", "B's", app=b)
    assert castgate.api("GET", "/v2/apps/me/members/shared-id", app=a).json()["appUserName"] == "A's"


def test_list_paging_sorting_and_filters(castgate):
    for i in range(12):
        new_member(castgate, f"u{i:02d}", "even" if i % 2 == 0 else "odd")
    r = castgate.api("GET", "/v2/apps/me/members?page=2&pageSize=5&sortBy=APP_USER_ID_ASC")
    assert r.status == 200
    p = r.json()
    assert [m["appUserId"] for m in p["content"]] == ["u10", "u11"]
    assert p["totalElements"] == 12 and p["totalPages"] == 3 and p["size"] == 5 and p["number"] == 2
    assert p["numberOfElements"] == 2 and p["last"] is True and p["first"] is False and p["empty"] is False
    assert p["pageable"] == {"sort": {"empty": False, "sorted": True, "unsorted": False}, "offset": 10,
                             "pageNumber": 2, "pageSize": 5, "paged": True, "unpaged": False}
    assert p["sort"] == {"empty": False, "sorted": True, "unsorted": False}
    r = castgate.api("GET", "/v2/apps/me/members?sortBy=APP_USER_ID_DESC&pageSize=3")
    assert [m["appUserId"] for m in r.json()["content"]] == ["u11", "u10", "u09"]
    r = castgate.api("GET", "/v2/apps/me/members?sortBy=CREATED_AT_ASC&pageSize=2")
    assert [m["appUserId"] for m in r.json()["content"]] == ["u00", "u01"]
    d = castgate.api("GET", "/v2/apps/me/members").json()
    assert d["size"] == 10 and len(d["content"]) == 10 and d["content"][0]["appUserId"] == "u11"
    assert castgate.api("GET", "/v2/apps/me/members?appUserName=odd").json()["totalElements"] == 6
    one = castgate.api("GET", "/v2/apps/me/members?appUserId=u03").json()
    assert one["totalElements"] == 1 and one["content"][0]["appUserId"] == "u03"
    far = castgate.api("GET", "/v2/apps/me/members?page=9").json()
    assert far["content"] == [] and far["empty"] is True and far["totalElements"] == 12
    for query, field in (("sortBy=NAME_ASC", "sortBy"), ("page=-1", "page"), ("pageSize=0", "pageSize"),
                         ("pageSize=101", "pageSize"), ("page=abc", "page"), ("pageSize=1.5", "pageSize")):
        assert_error(castgate.api("GET", "/v2/apps/me/members?" + query), 400, "INVALID_PARAMETER", field)


def test_delete_comma_list_deletes_members_and_keys(castgate):
    ids = [new_member(castgate, u)["id"] for u in ("d1", "d2", "d3")]
    key_ids = [member_key(castgate, u)["id"] for u in ("d1", "d2")]
    # one unknown id: nothing is deleted
    assert_error(castgate.api("DELETE", "/v2/apps/me/members/d1,nope"), 404, "MEMBER_NOT_FOUND")
    assert castgate.api("GET", "/v2/apps/me/members/d1").status == 200
    r = castgate.api("DELETE", "/v2/apps/me/members/d1,%20d2,d1")
    assert r.status == 204 and r.body == b""
    for u in ("d1", "d2"):
        assert_error(castgate.api("GET", f"/v2/apps/me/members/{u}"), 404, "MEMBER_NOT_FOUND")
    assert castgate.api("GET", "/v2/apps/me/members/d3").status == 200
    assert psql1(f"SELECT string_agg(state, ',' ORDER BY id) FROM members WHERE id IN ({ids[0]}, {ids[1]})") \
        == "DELETED,DELETED"
    assert psql1(f"SELECT string_agg(state, ',') FROM stream_keys WHERE id IN ({key_ids[0]}, {key_ids[1]})") \
        == "DELETED,DELETED"
    assert_error(castgate.api("GET", f"/v2/apps/me/stream-keys/{key_ids[0]}"), 404, "STREAM_KEY_NOT_FOUND")
    assert_error(castgate.api("DELETE", "/v2/apps/me/members/%20,%20"), 400, "EMPTY_APP_USER_ID")
    # the appUserId can be used again, with a new key
    again = new_member(castgate, "d1")
    assert again["id"] not in ids
    assert member_key(castgate, "d1")["id"] not in key_ids


def test_unicode_and_sql_metacharacters_round_trip(castgate):
    odd = "O'Brien; DROP TABLE members;-- \"%_\\ 日本語 🎥"
    m = new_member(castgate, odd, odd)
    assert m["appUserId"] == odd and m["appUserName"] == odd
    r = castgate.api("GET", "/v2/apps/me/members/" + q(odd))
    assert r.status == 200 and r.json()["appUserName"] == odd
    r = castgate.api("GET", "/v2/apps/me/members?appUserName=" + q(odd))
    assert r.json()["totalElements"] == 1
    assert psql1("SELECT count(*) FROM members") != "0"  # the table is still there


def test_missing_or_wrong_credentials_are_401(castgate):
    castgate.create_app("auth-app")
    base = castgate.http_base + "/v2/apps/me/members"
    good = castgate.app
    wrong_secret = base64.b64encode(f"{good['appApiKey']}:nope".encode()).decode()
    wrong_key = base64.b64encode(f"ak_nope:{good['appApiSecret']}".encode()).decode()
    for headers in ({}, {"Authorization": "Basic " + wrong_secret}, {"Authorization": "Basic " + wrong_key},
                    {"Authorization": "Basic !!!"}, {"Authorization": "Bearer x"},
                    {"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()},
                    {"VF-ORG-ID": good["orgId"]}):
        r = http("GET", base, headers=headers)
        assert_error(r, 401, "UNAUTHORIZED")
    # 401 comes before body validation
    r = http("POST", base, body=b"{not json", headers={"Authorization": "Basic " + wrong_secret})
    assert r.status == 401
    # the right credentials still work after failures (and from the cache)
    for _ in range(3):
        assert castgate.api("GET", "/v2/apps/me/members").status == 200

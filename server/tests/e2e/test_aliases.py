"""Collection aliases through the official client: create / switch / rename atomically, every
route usable through an alias, listing, and rights checked on the collection behind it."""

import httpx
from qdrant_client import QdrantClient, models


def test_aliases_switch_atomically_and_serve_every_route(server):
    client = QdrantClient(url=server.http, api_key=server.admin_token)
    for name, n in [("v1", 3), ("v2", 5)]:
        client.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
        client.upsert(name, points=[models.PointStruct(id=i, vector=[1.0, float(i)], payload={"v": name}) for i in range(n)])
    client.update_collection_aliases(change_aliases_operations=[
        models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="v1", alias_name="prod"))])
    assert client.count("prod").count == 3
    assert client.query_points("prod", query=[1.0, 0.0], limit=1, with_payload=True).points[0].payload == {"v": "v1"}
    assert client.get_collection("prod").points_count == 3
    assert client.collection_exists("prod")
    # Blue/green switch in one request.
    client.update_collection_aliases(change_aliases_operations=[
        models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name="prod")),
        models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="v2", alias_name="prod"))])
    assert client.count("prod").count == 5
    client.upsert("prod", points=[models.PointStruct(id=99, vector=[0.0, 1.0])])
    assert client.count("v2").count == 6
    client.update_collection_aliases(change_aliases_operations=[
        models.RenameAliasOperation(rename_alias=models.RenameAlias(old_alias_name="prod", new_alias_name="live")),
        models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="v1", alias_name="old"))])
    got = sorted((a.alias_name, a.collection_name) for a in client.get_aliases().aliases)
    assert got == [("live", "v2"), ("old", "v1")]
    assert [(a.alias_name, a.collection_name) for a in client.get_collection_aliases("v2").aliases] == [("live", "v2")]
    # A failing action applies nothing and names itself.
    h = {"api-key": server.admin_token}
    url = f"{server.http}/collections/aliases"
    r = httpx.post(url, headers=h, json={"actions": [{"delete_alias": {"alias_name": "live"}},
                                                     {"create_alias": {"collection_name": "missing", "alias_name": "x"}}]})
    assert r.status_code == 404 and "actions[1]" in r.json()["status"]["error"], r.text
    assert client.count("live").count == 6
    for body, status, field in [({"actions": [{"create_alias": {"collection_name": "v1", "alias_name": "v2"}}]}, 409, "v2"),
                                ({"actions": [{"create_alias": {"collection_name": "v1"}}]}, 400, "alias_name"),
                                ({"actions": [{"bogus": {}}]}, 400, "actions[0].bogus"),
                                ({"actions": [{"rename_alias": {"old_alias_name": "nope", "new_alias_name": "y"}}]}, 404, "nope"),
                                ({}, 400, "actions")]:
        r = httpx.post(url, headers=h, json=body)
        assert r.status_code == status and field in r.json()["status"]["error"], (body, r.text)
    r = httpx.put(f"{server.http}/collections/live", headers=h, json={"vectors": {"size": 2, "distance": "Dot"}})
    assert r.status_code == 409, r.text
    # Rights are those of the collection behind the alias; changing aliases needs "m".
    ro = server.token(access=[{"collection": "v2", "access": "r"}])
    rh = {"authorization": f"Bearer {ro}"}
    assert httpx.post(f"{server.http}/collections/live/points/count", headers=rh, json={}).json()["result"]["count"] == 6
    assert httpx.post(f"{server.http}/collections/old/points/count", headers=rh, json={}).status_code == 403
    assert httpx.put(f"{server.http}/collections/live/points", headers=rh,
                     json={"points": [{"id": 1, "vector": [1.0, 1.0]}]}).status_code == 403
    assert [a["alias_name"] for a in httpx.get(f"{server.http}/aliases", headers=rh).json()["result"]["aliases"]] == ["live"]
    assert httpx.post(url, headers=rh, json={"actions": [{"delete_alias": {"alias_name": "live"}}]}).status_code == 403
    # Dropping the collection drops its aliases.
    client.delete_collection("v2")
    assert [a.alias_name for a in client.get_aliases().aliases] == ["old"]
    assert not client.collection_exists("live")

from tests.utils import auth_headers, create


def test_create_and_read_back(client):
    headers = auth_headers(client)
    created = create(client, headers, amount="12.50")
    response = client.get(f"/transactions/{created['id']}", headers=headers)
    assert response.status_code == 200
    assert response.json()["amount"] == "12.50"

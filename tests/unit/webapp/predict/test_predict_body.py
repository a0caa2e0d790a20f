"""The prediction body reader: multipart forms as browsers, curl and scripts write them, raw image
bodies, and malformed bodies refused with 400."""
from __future__ import annotations

import io

import pytest

from engine.errors import StudioError
from tests.images import noisy_image
from webapp.predict.body import MAX_PARTS, parse_body

IMAGE = b"\x89PNG\r\n\r\n--not-a-boundary\r\n" + bytes(range(256)) * 4  # line breaks and dashes inside


def form(parts: list[tuple[str, str | None, bytes]], boundary: str = "----WebKitFormBoundaryA1b2", preamble=b"") -> bytes:
    out = preamble
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: image/png\r\n"
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def test_image_and_fields_in_any_order():
    data = form([("top_k", None, b"3"), ("image", "玫瑰.png", IMAGE), ("version", None, b"2")])
    body = parse_body(data, "multipart/form-data; boundary=----WebKitFormBoundaryA1b2")
    assert body.image == IMAGE and body.fields == {"top_k": "3", "version": "2"}


def test_quoted_boundary_preamble_and_an_empty_field():
    data = form([("image", "a.png", IMAGE), ("top_k", None, b"")], boundary="a b", preamble=b"ignored\r\n")
    body = parse_body(data, 'multipart/form-data; boundary="a b"')
    assert body.image == IMAGE and body.fields == {"top_k": ""}


def test_only_the_first_image_counts_and_other_files_are_ignored():
    data = form([("other", "x.png", b"zzz"), ("image", "a.png", IMAGE), ("image", "b.png", b"second")])
    assert parse_body(data, "multipart/form-data; boundary=----WebKitFormBoundaryA1b2").image == IMAGE


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png; charset=binary", "application/octet-stream"])
def test_a_raw_image_body_is_the_image(content_type):
    body = parse_body(IMAGE, content_type)
    assert body.image == IMAGE and body.fields == {}


@pytest.mark.parametrize("data, content_type", [
    (b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a\"\r\n\r\nabc", "multipart/form-data; boundary=b"),
    (b"no boundary here", "multipart/form-data; boundary=b"),
    (b"--b\r\nContent-Disposition form-data\r\n\r\nabc\r\n--b--", "multipart/form-data; boundary=b"),
    (b"--b\r\nContent-Disposition: form-data; name=\"x\"", "multipart/form-data; boundary=b"),
    (b"--b", "multipart/form-data"),
    (b"--b", "multipart/form-data; boundary=" + "b" * 300),
    (b"--b", "multipart/form-data; boundary=玫瑰"),
    ("".join(f"--b\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\n{i}\r\n" for i in range(MAX_PARTS + 1)).encode()
     + b"--b--", "multipart/form-data; boundary=b"),
])
def test_malformed_bodies_are_refused(data, content_type):
    with pytest.raises(StudioError) as refused:
        parse_body(data, content_type)
    assert refused.value.code == "invalid_body"


def test_a_body_of_another_kind_asks_for_the_image():
    for content_type in (None, "application/json", "text/plain", "application/x-www-form-urlencoded"):
        with pytest.raises(StudioError) as refused:
            parse_body(b"{}", content_type)
        assert (refused.value.code, refused.value.details["field"]) == ("missing_field", "image")


def test_a_field_that_is_not_utf8_is_named():
    data = form([("image", "a.png", IMAGE), ("top_k", None, b"\xff\xfe")])
    with pytest.raises(StudioError) as refused:
        parse_body(data, "multipart/form-data; boundary=----WebKitFormBoundaryA1b2")
    assert (refused.value.code, refused.value.details["field"]) == ("invalid_field", "top_k")


def test_the_endpoint_takes_a_raw_body_with_options_in_the_query(served):
    client = served.test_client()
    response = client.post("/api/predict?top_k=2", data=noisy_image(4, (40, 200, 60)), content_type="image/png")
    body = response.get_json()
    assert response.status_code == 200 and body["class"] == "green" and len(body["top_k"]) == 2
    response = client.post("/api/predict", data=b"", content_type="image/png")
    assert response.status_code == 400 and response.get_json()["code"] == "empty_file"
    response = client.post("/api/predict", data=b"{}", content_type="application/json")
    assert response.status_code == 400 and response.get_json()["field"] == "image"


def test_the_document_describes_the_form_its_options_and_the_answer(app):
    from webapp.api_docs import document

    spec = document(app)
    predict = spec["paths"]["/api/predict"]["post"]
    form = predict["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(spec["components"]["schemas"][form]["properties"]) == {"image", "version", "top_k", "explain"}
    assert set(predict["requestBody"]["content"]) == {"multipart/form-data", "image/*", "application/octet-stream"}
    assert {parameter["name"] for parameter in predict["parameters"]} == {"version", "top_k", "explain"}
    answer = spec["components"]["schemas"]["Prediction"]
    assert set(answer["properties"]) == {"id", "class", "confidence", "abstained", "abstained_by", "top_k",
                                         "model_version", "runtime", "arm", "elapsed_ms", "explanation"}
    refusals = {status: answer["description"] for status, answer in predict["responses"].items()}
    assert "`not_an_image`" in refusals["415"] and "`file_too_large`" in refusals["413"]
    assert "`model_busy`" in refusals["503"] and "`no_model`" in refusals["409"]


def test_options_are_read_from_the_form_or_the_query_before_any_model_is_needed(client):
    def ask(query: dict, **fields):
        form = {"image": (io.BytesIO(noisy_image(1, (1, 2, 3))), "x.png"), **fields}
        return client.post("/api/predict", data=form, query_string=query, content_type="multipart/form-data")

    for query, fields, name in (({}, {"top_k": "1e3"}, "top_k"), ({"top_k": "true"}, {}, "top_k"),
                                ({}, {"version": "0"}, "version"), ({"version": "1.0"}, {}, "version")):
        refused = ask(query, **fields)
        assert (refused.status_code, refused.get_json()["field"]) == (400, name), (query, fields)
        assert "must be a whole number from 1 to" in refused.get_json()["error"]
    assert ask({"top_k": "x"}, top_k="2").get_json()["code"] == "no_model"  # the form's field wins

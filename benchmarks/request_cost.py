"""Where one prediction request's time goes: the server, the framework, the guards, the body, the decode, the
model, the answer, the statistics and the feedback hold, each measured alone in this process.

Each part is called the way a request calls it (inside a request context of the real app, on a bundle exported as
a job exports it, with the 1024x768 JPEG that benchmarks/predict_latency.py sends) many times; the figures are
median microseconds per call. `server` is gunicorn under the studio's own gunicorn.conf.py answering the same
body from a WSGI app that only reads it, timed by a keep-alive client (so it includes the client's own side);
`whole_request_in_process` is the studio's WSGI app called directly; `around_the_model` is what a request costs
beyond decode, preprocessing and the model (the part the serving targets bound).

    .venv/bin/python benchmarks/request_cost.py [--image-size 224] [--backbone mobilenet_v3_small]
        [--repeats 300] [--tiny]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.predict_latency import Endpoint, make_bundle, measure, photo  # noqa: E402
from benchmarks.tiny_mode import parse_args  # noqa: E402
from launcher import free_port, wait_for_port  # noqa: E402

TINY = {"image_size": 32, "repeats": 20}
MAX_PIXELS = 40_000_000
# A WSGI app that reads the body and answers a small JSON: what gunicorn itself costs a request.
READ_ONLY_APP = '''
def app(environ, start_response):
    data = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0) + 1)
    body = b'{"bytes": %d}' % len(data)
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
'''


def median_us(call, repeats: int, setup=None) -> float:
    """Median microseconds of `call()` (after `setup()`, untimed, when given) over `repeats` calls."""
    for _ in range(max(3, repeats // 10)):
        call(*(setup() if setup else ()))
    samples = []
    for _ in range(repeats):
        arguments = setup() if setup else ()
        started = time.perf_counter()
        call(*arguments)
        samples.append(time.perf_counter() - started)
    return round(statistics.median(samples) * 1e6, 1)


def multipart(image: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def server_cost(image: bytes, repeats: int) -> float:
    """Client p50 in microseconds of gunicorn (the studio's configuration, one process) answering the body."""
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "read_only_app.py").write_text(READ_ONLY_APP, encoding="utf-8")
        port = free_port()
        env = {**os.environ, "PORT": str(port), "WEB_PROCESSES": "1"}
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"),
                                   "--chdir", folder, "read_only_app:app"], env=env, cwd=folder,
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    wait_for_port("127.0.0.1", port, _Running(server), timeout=1)
                    break
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise
            return round(measure(Endpoint(port, image), repeats, 1)["p50_ms"] * 1000, 1)
        finally:
            server.terminate()
            server.wait()


class _Running:
    """What launcher.wait_for_port asks of a service: whether it exited."""

    name = "gunicorn"

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    def exited(self):
        return self.process.poll()


def parts(data_dir: Path, image: bytes, repeats: int) -> dict:
    from engine.images import open_checked
    from webapp import create_app
    from webapp.accounts import guard
    from webapp.contract import contract
    from webapp.feedback.holding import HeldPrediction
    from webapp.predict import api
    from webapp.predict.serving import answer

    app = create_app({"DATA_DIR": str(data_dir), "REDIS_URL": "redis://127.0.0.1:1/0"})
    body, content_type = multipart(image)
    environ = {"REMOTE_ADDR": "127.0.0.1"}

    def context():
        return app.test_request_context("/api/predict", method="POST", data=body, content_type=content_type,
                                        environ_base=environ)

    def in_context(call):
        def run(ctx):
            with ctx:
                call()
        return run

    with app.app_context():
        server = app.extensions["model_server"]
        loaded = server.get(1)
    decoded = open_checked(image, MAX_PIXELS, loaded.decode_size)[0]
    rule = loaded.bundle.preprocess
    square = rule.square(decoded.copy())
    batch = rule.batch(square[None])
    probabilities = loaded.threads.run(batch)[0]
    with app.test_request_context("/api/predict", method="POST"):
        result = loaded.classify(decoded.copy(), 5)
        response = app.json.response({"id": str(uuid.uuid4()), **result, "arm": "production", "elapsed_ms": 1.0})
    stats, hold = app.extensions["serving_stats"], app.extensions["prediction_hold"]
    documented = _documented()
    wsgi = app.wsgi_app

    def whole():
        env = {**base_environ, "wsgi.input": io.BytesIO(body)}
        statuses = []
        for _ in wsgi(env, lambda status, headers, exc_info=None: statuses.append(status)):
            pass
        assert statuses[0].startswith("200"), statuses

    with app.test_request_context("/api/predict", method="POST", data=body, content_type=content_type,
                                  environ_base=environ) as ctx:
        base_environ = {key: value for key, value in ctx.request.environ.items() if not key.startswith("werkzeug.")}
    figures = {
        "whole_request_in_process": median_us(whole, repeats),
        "guards": median_us(in_context(lambda: (guard._before_request(), guard._after_request(app.response_class()))),
                            repeats, lambda: (context(),)),
        "body": median_us(in_context(api._read_body), repeats, lambda: (context(),)),
        "catalog_and_route": median_us(in_context(lambda: api._answering(None)), repeats, lambda: (context(),)),
        "decode": median_us(lambda: open_checked(image, MAX_PIXELS, loaded.decode_size), repeats),
        "preprocess": median_us(lambda image: rule.batch(rule.square(image)[None]), repeats,
                                lambda: (decoded.copy(),)),
        "model": median_us(lambda: loaded.threads.run(batch), repeats),
        "answer": median_us(lambda: answer(probabilities, loaded.classes, 5), repeats),
        "json": median_us(in_context(lambda: app.json.response({**result, "arm": "production"})), repeats,
                          lambda: (context(),)),
        "answer_check": median_us(in_context(lambda: contract.backend.validate_response(
            response, documented, False, False)), repeats, lambda: (context(),)),
        "statistics": median_us(lambda: stats.record(1, "production", 5.0, 0.9, False), repeats),
        "feedback_hold": median_us(lambda: hold.keep(HeldPrediction(
            str(uuid.uuid4()), 1, "production", "a", 0.9, False, "jpg", time.time(), image)), repeats),
    }
    inside = figures["decode"] + figures["preprocess"] + figures["model"]
    figures["around_the_model_in_process"] = round(figures["whole_request_in_process"] - inside, 1)
    return figures


def _documented():
    from spectree import Response

    from webapp.predict.schemas import Prediction

    return Response(HTTP_200=Prediction)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--backbone", default="mobilenet_v3_small")
    parser.add_argument("--repeats", type=int, default=300)
    args = parse_args(parser, TINY)
    image = photo()
    with tempfile.TemporaryDirectory() as folder:
        make_bundle(Path(folder), args.image_size, args.backbone)
        figures = parts(Path(folder), image, args.repeats)
    figures["server_and_client"] = server_cost(image, args.repeats)
    print(json.dumps({"backbone": args.backbone, "image_size": args.image_size, "image_bytes": len(image),
                      "median_us": figures}, indent=2))


if __name__ == "__main__":
    main()

"""The install route (deploy/paddle_build.py) as its dry run lists it: which wheels, from which index, in which order.

Nothing here installs or downloads: the route's commands are planned, printed and read back. The pins are read
from setup.cfg by the test itself, so the script cannot carry a second copy of them unnoticed.
"""
from __future__ import annotations

import configparser
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "paddle_build.py"
PADDLE_WHEELS = {"paddlepaddle", "paddlepaddle-gpu"}
ONNXRUNTIME_WHEELS = {"onnxruntime", "onnxruntime-gpu"}


def load_script():
    spec = importlib.util.spec_from_file_location("paddle_build", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script loads
    spec.loader.exec_module(module)
    return module


paddle_build = load_script()


def setup_cfg_pins(section: str, key: str) -> list[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    return [line.strip() for line in config[section][key].splitlines() if "==" in line]


def pin(section: str, key: str, name: str) -> str:
    return next(line for line in setup_cfg_pins(section, key) if line.split("==")[0] == name)


def cpu_pin(name: str) -> str:
    return pin("options", "install_requires", name)


def gpu_pin(name: str) -> str:
    return pin("options.extras_require", "gpu", name)


def pip_args(steps) -> list[list[str]]:
    """Each step's pip arguments (after `python -m pip`); the final check keeps its whole command line."""
    return [step.argv[3:] if step.argv[1:3] == ["-m", "pip"] else step.argv for step in steps]


def installs(args: list[str], names: set[str]) -> bool:
    return args[0] == "install" and any(arg.split("==")[0] in names for arg in args)


def check_route_order(steps, build: str) -> None:
    """The shape every route has: project, both-wheels uninstall, ..., the wanted wheels forced back, the check."""
    args = pip_args(steps)
    assert all(step.argv[0] == sys.executable for step in steps)
    uninstall = args.index(next(a for a in args if a[0] == "uninstall"))
    assert uninstall == 1 and PADDLE_WHEELS | ONNXRUNTIME_WHEELS <= set(args[uninstall])
    paddle_installs = [i for i, a in enumerate(args) if installs(a, PADDLE_WHEELS)]
    assert paddle_installs and min(paddle_installs) > uninstall  # both removed before either is installed
    assert args[-1][:4] == [sys.executable, str(SCRIPT), build, "--check"]  # the last word is the import check


def test_the_cpu_route_on_a_cpu_environment_installs_and_checks_and_repairs_nothing():
    for installed in (set(), {"paddlepaddle", "onnxruntime", "numpy"}):
        steps = paddle_build.plan("cpu", project="-e .[test]", installed=installed)
        assert pip_args(steps) == [["install", "-e", ".[test]"], [sys.executable, str(SCRIPT), "cpu", "--check"]]
    assert not paddle_build.needs_repair("cpu", {"paddlepaddle", "onnxruntime"})
    assert paddle_build.needs_repair("gpu", set())  # installing the studio brings the CPU wheels first
    repaired = paddle_build.plan("cpu", installed=set(), repair=True)
    assert pip_args(repaired)[1][0] == "uninstall" and len(repaired) == 5


def test_the_cpu_route_reinstalls_the_cpu_wheels_after_removing_both_builds():
    for wheel in ("paddlepaddle-gpu", "onnxruntime-gpu", "tensorrt-cu12-libs"):
        assert paddle_build.needs_repair("cpu", {"paddlepaddle", wheel}), wheel
    steps = paddle_build.plan("cpu", project="-e .[test]", installed={"paddlepaddle-gpu", "onnxruntime"})
    assert pip_args(steps) == [
        ["install", "-e", ".[test]"],
        ["uninstall", "--yes", "paddlepaddle", "paddlepaddle-gpu", "onnxruntime", "onnxruntime-gpu",
         "tensorrt-cu12", "tensorrt-cu12-libs", "tensorrt-cu12-bindings"],
        ["install", "--force-reinstall", "--no-deps", cpu_pin("paddlepaddle")],
        ["install", "--force-reinstall", "--no-deps", cpu_pin("onnxruntime")],
        [sys.executable, str(SCRIPT), "cpu", "--check"],
    ]
    check_route_order(steps, "cpu")


def test_the_gpu_route_takes_cuda_libraries_from_pypi_and_paddle_from_its_index():
    steps = paddle_build.plan("gpu", project=".", paddle_index="https://paddle.example/cu126/")
    args = pip_args(steps)
    nvidia = [line for line in setup_cfg_pins("options.extras_require", "gpu") if line.startswith("nvidia-")]
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12", "nvidia-nccl-cu12"} <= {
        line.split("==")[0] for line in nvidia}
    assert args == [
        ["install", "."],
        ["uninstall", "--yes", "paddlepaddle", "paddlepaddle-gpu", "onnxruntime", "onnxruntime-gpu",
         "tensorrt-cu12", "tensorrt-cu12-libs", "tensorrt-cu12-bindings"],
        ["install", *nvidia],  # PyPI: no index option, and with their own dependencies
        ["install", "--force-reinstall", "--no-deps", "--index-url", "https://paddle.example/cu126/",
         gpu_pin("paddlepaddle-gpu")],
        ["install", "--force-reinstall", "--no-deps", gpu_pin("onnxruntime-gpu")],
        [sys.executable, str(SCRIPT), "gpu", "--check"],
    ]
    assert gpu_pin("paddlepaddle-gpu").split("==")[1] == cpu_pin("paddlepaddle").split("==")[1]
    check_route_order(steps, "gpu")


def test_tensorrt_joins_the_gpu_route_from_nvidias_index_and_is_checked():
    steps = paddle_build.plan("gpu", tensorrt=True, tensorrt_index="https://nvidia.example", quiet=True)
    args = pip_args(steps)
    assert ["install", "--extra-index-url", "https://nvidia.example", gpu_pin("tensorrt-cu12"), "--quiet"] in args
    assert args[1] == ["uninstall", "--yes", "paddlepaddle", "paddlepaddle-gpu", "onnxruntime", "onnxruntime-gpu",
                       "--quiet"]  # the TensorRT that is wanted stays
    assert args[-1] == [sys.executable, str(SCRIPT), "gpu", "--check", "--tensorrt"]
    link = args.index([sys.executable, str(SCRIPT), "gpu", "--link-tensorrt"])  # right after TensorRT's install
    assert args[link - 1][:2] == ["install", "--extra-index-url"]
    assert all(a[-1] == "--quiet" for i, a in enumerate(args[:-1]) if i != link)
    check_route_order(steps, "gpu")


def test_the_route_links_the_library_name_serving_looks_for():
    """The script runs before the studio's dependencies exist, so it names the library itself."""
    from engine.tensorrt import TENSORRT_LIBRARY

    assert paddle_build.TENSORRT_LINKS[0] == TENSORRT_LIBRARY


def test_tensorrt_is_linked_under_the_names_paddle_opens(tmp_path):
    folder = tmp_path / "tensorrt_libs"
    folder.mkdir()
    for name in ("libnvinfer.so.10", "libnvinfer.so.10.5.0", "libnvinfer_plugin.so.10",
                 "libnvinfer_builder_resource.so.10.5.0"):
        (folder / name).write_bytes(b"")
    assert paddle_build.unlinked_tensorrt(folder) == ["libnvinfer.so", "libnvinfer_plugin.so"]
    assert paddle_build.link_tensorrt(folder) == []
    assert os.readlink(folder / "libnvinfer.so") == "libnvinfer.so.10"
    assert os.readlink(folder / "libnvinfer_plugin.so") == "libnvinfer_plugin.so.10"
    assert paddle_build.unlinked_tensorrt(folder) == [] and paddle_build.link_tensorrt(folder) == []  # idempotent
    (folder / "libnvinfer.so").unlink()
    (folder / "libnvinfer.so").symlink_to("libnvinfer.so.8")  # left by an older TensorRT
    assert paddle_build.unlinked_tensorrt(folder) == ["libnvinfer.so"] and paddle_build.link_tensorrt(folder) == []
    assert os.readlink(folder / "libnvinfer.so") == "libnvinfer.so.10"
    (folder / "libnvinfer_plugin.so").unlink()
    (folder / "libnvinfer_plugin.so.10").unlink()
    assert paddle_build.link_tensorrt(folder) == [f"{folder} has no libnvinfer_plugin.so.<version> to link "
                                                  "libnvinfer_plugin.so to"]
    assert paddle_build.link_tensorrt(None)[0].startswith("TensorRT's libraries (site-packages/tensorrt_libs)")
    assert paddle_build.unlinked_tensorrt(None) == []


def run_script(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("PADDLE_GPU_INDEX", "TENSORRT_INDEX")}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=30,
                          env={**clean, **(env or {})})


def test_the_dry_run_prints_one_command_a_line_or_json_and_runs_nothing():
    lines = run_script("gpu", "--dry-run").stdout.splitlines()
    assert len(lines) == 6 and all(line.startswith(sys.executable) for line in lines)
    assert "--index-url " + paddle_build.DEFAULT_PADDLE_GPU_INDEX in lines[3]
    assert gpu_pin("paddlepaddle-gpu") in lines[3]

    answer = run_script("gpu", "--tensorrt", "--dry-run", "--json", "--project", "-e .[test]",
                        env={"PADDLE_GPU_INDEX": "https://paddle.example/cu129/"})
    assert answer.returncode == 0, answer.stderr
    document = json.loads(answer.stdout)
    assert (document["build"], document["tensorrt"]) == ("gpu", True)
    assert all(set(step) == {"why", "argv"} and step["why"] for step in document["steps"])
    argvs = [step["argv"] for step in document["steps"]]
    assert argvs[0][3:] == ["install", "-e", ".[test]"]
    assert any("https://paddle.example/cu129/" in argv for argv in argvs)


def test_the_route_refuses_what_it_cannot_build():
    refused = run_script("cpu", "--tensorrt", "--dry-run")
    assert refused.returncode == 2 and "TensorRT comes with the gpu build only" in refused.stderr
    assert refused.stdout == ""


def test_a_pin_missing_from_setup_cfg_is_named(tmp_path):
    cfg = tmp_path / "setup.cfg"
    cfg.write_text("[options]\ninstall_requires =\n    paddlepaddle==3.3.1\n    onnxruntime==1.32.0\n"
                   "[options.extras_require]\ngpu =\n    # only Paddle\n    paddlepaddle-gpu==3.3.1\n")
    pins = paddle_build.read_pins(cfg)
    assert pins.cpu == {"paddlepaddle": "3.3.1", "onnxruntime": "1.32.0"}
    with pytest.raises(ValueError, match="setup.cfg pins no onnxruntime-gpu for the gpu build"):
        paddle_build.plan("gpu", pins=pins)


FOUND_CPU = {"paddle": "3.3.1", "compiled_with_cuda": False, "cuda_libraries_from_wheels": True, "tensorrt": None,
             "onnxruntime": "1.32.0", "providers": ["CPUExecutionProvider"],
             "missing_cuda_libraries": [f"{folder}/lib/{name}" for folder, name in paddle_build.CUDA_LIBRARIES.items()],
             "unlinked_tensorrt": []}
FOUND_GPU = {**FOUND_CPU, "compiled_with_cuda": True, "onnxruntime": "1.26.0", "missing_cuda_libraries": [],
             "providers": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]}


def test_the_check_names_each_way_the_installed_wheels_miss_the_wanted_build():
    assert paddle_build.build_problems("cpu", False, FOUND_CPU) == []
    assert paddle_build.build_problems("gpu", False, FOUND_GPU) == []
    problems = paddle_build.build_problems("gpu", True, FOUND_CPU)
    assert [re.sub(r" found .*|: .*", "", p) for p in problems] == [
        "wanted the gpu build of Paddle,", "CUDA libraries missing from site-packages/nvidia",
        "wanted the gpu build of ONNX Runtime,", "TensorRT was asked for but does not import"]
    assert "cudnn/lib/libcudnn.so.9" in problems[1] and "cuda_runtime/lib/libcudart.so.12" in problems[1]
    assert paddle_build.build_problems("cpu", False, FOUND_GPU)[0].startswith("wanted the cpu build of Paddle")
    unlinked = {**FOUND_GPU, "tensorrt": "10.5.0", "unlinked_tensorrt": ["libnvinfer.so"]}
    assert paddle_build.build_problems("gpu", True, unlinked) == [
        "Paddle cannot load TensorRT: no libnvinfer.so in tensorrt_libs (--link-tensorrt adds them)"]
    system_cuda = {**FOUND_GPU, "cuda_libraries_from_wheels": False}
    assert paddle_build.build_problems("gpu", False, system_cuda) == [
        "this Paddle build looks for CUDA in the system, not in the nvidia-* wheels"]


def test_the_check_finds_the_cuda_libraries_where_paddle_loads_them(tmp_path):
    nvidia = tmp_path / "nvidia"
    for folder, name in paddle_build.CUDA_LIBRARIES.items():
        if folder != "cudnn":
            (nvidia / folder / "lib").mkdir(parents=True)
            (nvidia / folder / "lib" / name).write_bytes(b"")
    assert paddle_build.missing_cuda_libraries(nvidia) == ["cudnn/lib/libcudnn.so.9"]


def test_make_install_calls_the_route_and_keeps_one_marker_per_build():
    dry = subprocess.run(["make", "-n", "-B", "-C", str(ROOT), "install", "PADDLE=gpu", "TENSORRT=1"],
                         capture_output=True, text=True, timeout=30)
    assert dry.returncode == 0, dry.stderr
    script = " ".join(dry.stdout.replace("\\\n", " ").split())
    assert "python deploy/paddle_build.py gpu --project '-e .[test]' --quiet --tensorrt" in script
    assert "rm -f .venv/.installed-*" in script and "touch .venv/.installed-gpu-tensorrt" in script
    cpu = subprocess.run(["make", "-n", "-B", "-C", str(ROOT), "install"], capture_output=True, text=True, timeout=30)
    assert "touch .venv/.installed-cpu" in cpu.stdout and "--tensorrt" not in cpu.stdout

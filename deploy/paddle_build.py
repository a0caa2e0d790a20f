"""Install the studio with the CPU or the CUDA build of Paddle and ONNX Runtime, and prove the result imports.

`make install` (PADDLE=cpu|gpu, TENSORRT=1) and the Dockerfile both run this script, so a machine and an image
are built the same way. The pins live in setup.cfg only: the CPU wheels in `install_requires`, the CUDA build's
wheels in the `gpu` extra (Paddle's CUDA wheel, the nvidia-* CUDA libraries it loads from site-packages/nvidia/,
onnxruntime-gpu and TensorRT).

The two Paddle wheels (paddlepaddle, paddlepaddle-gpu) install the same files, and so do the two ONNX Runtime
wheels: removing one after installing the other deletes files the other needs. So an install that switches
builds removes both of each pair and then reinstalls the wanted one with --force-reinstall --no-deps (the CUDA
build always does: installing the studio brings the CPU wheels first). A CPU install into an environment that
holds no CUDA wheel has nothing to repair and keeps its wheels (`--repair` forces the repair anyway). The last
step imports both modules in a fresh interpreter and fails unless they are the wanted build.

Standard library only: it runs before the studio's dependencies exist. `--dry-run` prints the commands instead
of running them (`--json` for a machine-readable list).
"""
from __future__ import annotations

import argparse
import configparser
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

SETUP_CFG = Path(__file__).resolve().parents[1] / "setup.cfg"
BUILDS = ("cpu", "gpu")
PADDLE_WHEELS = {"cpu": "paddlepaddle", "gpu": "paddlepaddle-gpu"}
ONNXRUNTIME_WHEELS = {"cpu": "onnxruntime", "gpu": "onnxruntime-gpu"}
# tensorrt-cu12 on PyPI is a small source package; its -libs and -bindings wheels come from NVIDIA's index.
TENSORRT_WHEEL = "tensorrt-cu12"
TENSORRT_PARTS = (TENSORRT_WHEEL, "tensorrt-cu12-libs", "tensorrt-cu12-bindings")
# Paddle's CUDA 3.x wheels are on Paddle's own index only (PyPI stops at 2.6); this one matches CUDA 12.6.
DEFAULT_PADDLE_GPU_INDEX = "https://www.paddlepaddle.org.cn/packages/stable/cu126/"
DEFAULT_TENSORRT_INDEX = "https://pypi.nvidia.com"
# The libraries Paddle's CUDA build loads from site-packages/nvidia/<folder>/lib (its RPATH and FLAGS_*_dir point
# there), as the gpu extra's CUDA 12 / cuDNN 9 wheels name them: the check finds each before Paddle needs it.
CUDA_LIBRARIES = {"cuda_runtime": "libcudart.so.12", "cublas": "libcublas.so.12", "cudnn": "libcudnn.so.9",
                  "cufft": "libcufft.so.11", "curand": "libcurand.so.10", "cusolver": "libcusolver.so.11",
                  "cusparse": "libcusparse.so.12", "nccl": "libnccl.so.2"}
# Paddle's loader opens TensorRT by these unversioned names (engine/tensorrt.py TENSORRT_LIBRARY is the first),
# which the TensorRT wheel ships only as <name>.<major>; the route links them in the wheel's folder,
# site-packages/tensorrt_libs.
TENSORRT_LINKS = ("libnvinfer.so", "libnvinfer_plugin.so")
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*(?P<version>[^\s;]+)")


@dataclass(frozen=True)
class Step:
    """One command of the route, with the reason it is there (shown by --dry-run --json)."""

    why: str
    argv: list[str]


@dataclass(frozen=True)
class Pins:
    """The versions setup.cfg pins, by normalised package name, for each of the two builds."""

    cpu: dict[str, str]
    gpu: dict[str, str]

    def wheel(self, build: str, name: str) -> str:
        """`name==version` for a package the build's section of setup.cfg pins (ValueError when it pins none)."""
        version = getattr(self, build).get(normalise(name))
        if version is None:
            raise ValueError(f"setup.cfg pins no {name} for the {build} build")
        return f"{name}=={version}"

    def cuda_libraries(self) -> list[str]:
        """The gpu extra's nvidia-* wheels: the CUDA runtime, cuDNN, cuBLAS, NCCL... that Paddle's wheel loads."""
        return [f"{name}=={version}" for name, version in self.gpu.items() if name.startswith("nvidia-")]


def normalise(name: str) -> str:
    """A package name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(lines: str) -> dict[str, str]:
    """Map normalised name -> version for every `name==version` line of a setup.cfg requirement list."""
    pins = {}
    for line in lines.splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[normalise(match["name"])] = match["version"]
    return pins


def read_pins(setup_cfg: Path = SETUP_CFG) -> Pins:
    """The CPU pins from `install_requires` and the CUDA build's pins from the `gpu` extra."""
    config = configparser.ConfigParser()
    config.read(setup_cfg, encoding="utf-8")
    return Pins(cpu=parse_pins(config["options"]["install_requires"]),
                gpu=parse_pins(config["options.extras_require"]["gpu"]))


def pip(*args: str, quiet: bool = False) -> list[str]:
    """A pip command line for the interpreter running this script (the venv's, or the image's)."""
    return [sys.executable, "-m", "pip", *args, *(["--quiet"] if quiet else [])]


def this_script(*args: str) -> list[str]:
    """A command line that runs this script again, in a fresh interpreter (one of the route's own steps)."""
    return [sys.executable, str(Path(__file__).resolve()), *args]


def wheel_steps(build: str, pins: Pins, paddle_index: str, quiet: bool) -> list[Step]:
    """Reinstall the wanted Paddle and ONNX Runtime wheels over whatever files the other build left."""
    paddle_source = ["--index-url", paddle_index] if build == "gpu" else []
    return [
        Step(f"the {build} build of Paddle" + (" from Paddle's index" if build == "gpu" else ""),
             pip("install", "--force-reinstall", "--no-deps", *paddle_source,
                 pins.wheel(build, PADDLE_WHEELS[build]), quiet=quiet)),
        Step(f"the {build} build of ONNX Runtime",
             pip("install", "--force-reinstall", "--no-deps", pins.wheel(build, ONNXRUNTIME_WHEELS[build]),
                 quiet=quiet)),
    ]


def gpu_library_steps(pins: Pins, tensorrt: bool, tensorrt_index: str, quiet: bool) -> list[Step]:
    """The CUDA libraries Paddle's CUDA wheel loads (from PyPI), and TensorRT when asked for."""
    steps = [Step("CUDA, cuDNN, cuBLAS, NCCL... as the nvidia-* wheels Paddle's CUDA build loads",
                  pip("install", *pins.cuda_libraries(), quiet=quiet))]
    if tensorrt:
        steps.append(Step("TensorRT (its libraries come from NVIDIA's index)",
                          pip("install", "--extra-index-url", tensorrt_index, pins.wheel("gpu", TENSORRT_WHEEL),
                              quiet=quiet)))
        steps.append(Step("TensorRT's libraries under the names Paddle's loader opens",
                          this_script("gpu", "--link-tensorrt")))
    return steps


def installed_distributions() -> set[str]:
    """The normalised names of the distributions installed for the interpreter running this script."""
    return {normalise(dist.metadata["Name"]) for dist in metadata.distributions() if dist.metadata["Name"]}


def needs_repair(build: str, installed: set[str], tensorrt: bool = False) -> bool:
    """Whether the route must remove both wheels of each pair and force the wanted ones back: always for the CUDA
    build (installing the studio brings the CPU wheels), and for the CPU build when a CUDA wheel (or a TensorRT
    that is no longer wanted) is installed, i.e. when switching back."""
    if build == "gpu":
        return True
    cuda_wheels = {PADDLE_WHEELS["gpu"], ONNXRUNTIME_WHEELS["gpu"], *(() if tensorrt else TENSORRT_PARTS)}
    return bool(installed & {normalise(name) for name in cuda_wheels})


def plan(build: str, *, project: str = ".", tensorrt: bool = False, pins: Pins | None = None,
         paddle_index: str = DEFAULT_PADDLE_GPU_INDEX, tensorrt_index: str = DEFAULT_TENSORRT_INDEX,
         quiet: bool = False, installed: set[str] | None = None, repair: bool = False) -> list[Step]:
    """Every command that installs `project` with the given build, in order, ending with the import check.
    `installed` (the environment's distributions; read when not given) decides whether builds are switched
    and the wheels need repairing; `repair` repairs them anyway."""
    if build not in BUILDS:
        raise ValueError(f"build must be one of {BUILDS}, not {build!r}")
    if tensorrt and build != "gpu":
        raise ValueError("TensorRT comes with the gpu build only")
    pins = pins or read_pins()
    installed = installed_distributions() if installed is None else installed
    unwanted_tensorrt = [] if tensorrt else list(TENSORRT_PARTS)
    steps = [Step("the studio and its dependencies (these bring the CPU wheels)",
                  pip("install", *shlex.split(project), quiet=quiet))]
    if repair or needs_repair(build, installed, tensorrt):
        steps.append(Step("both wheels of each pair, since they own the same files",
                          pip("uninstall", "--yes", *PADDLE_WHEELS.values(), *ONNXRUNTIME_WHEELS.values(),
                              *unwanted_tensorrt, quiet=quiet)))
        if build == "gpu":
            steps += gpu_library_steps(pins, tensorrt, tensorrt_index, quiet)
        steps += wheel_steps(build, pins, paddle_index, quiet)
    steps.append(Step("prove the wanted build imports, in a fresh interpreter",
                      this_script(build, "--check", *(["--tensorrt"] if tensorrt else []))))
    return steps


def describe_installed() -> dict:
    """What the installed Paddle and ONNX Runtime wheels were built for (imports both; run after installing)."""
    import onnxruntime
    import paddle

    return {"paddle": paddle.__version__, "compiled_with_cuda": paddle.is_compiled_with_cuda(),
            "cuda": paddle.version.cuda(), "cudnn": paddle.version.cudnn(),
            "cuda_libraries_from_wheels": paddle.version.with_pip_cuda_libraries == "ON",
            "paddle_tensorrt": paddle.version.tensorrt(), "tensorrt": tensorrt_version(),
            "onnxruntime": onnxruntime.__version__, "providers": onnxruntime.get_available_providers(),
            "missing_cuda_libraries": missing_cuda_libraries(Path(paddle.__file__).resolve().parents[1] / "nvidia"),
            "unlinked_tensorrt": unlinked_tensorrt(tensorrt_folder())}


def missing_cuda_libraries(nvidia: Path) -> list[str]:
    """The CUDA_LIBRARIES absent from the nvidia-* wheels' folder (a site-packages/nvidia path), as folder/lib/name."""
    wanted = [f"{folder}/lib/{name}" for folder, name in CUDA_LIBRARIES.items()]
    return [path for path in wanted if not (nvidia / path).exists()]


def tensorrt_folder() -> Path | None:
    """The TensorRT wheel's library folder (site-packages/tensorrt_libs), or None without that wheel."""
    import importlib.util

    spec = importlib.util.find_spec("tensorrt_libs")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def unlinked_tensorrt(folder: Path | None) -> list[str]:
    """The TENSORRT_LINKS missing from the TensorRT wheel's `folder` (none without the wheel)."""
    return [] if folder is None else [name for name in TENSORRT_LINKS if not (folder / name).exists()]


def link_tensorrt(folder: Path | None) -> list[str]:
    """Give each of TENSORRT_LINKS in `folder` a link to its versioned library (libnvinfer.so -> libnvinfer.so.10:
    the major version's name, the shortest, when there are several); a link left dangling by an older TensorRT is
    replaced. Return the problems, empty when every name resolves."""
    if folder is None:
        return ["TensorRT's libraries (site-packages/tensorrt_libs) are not installed"]
    problems = []
    for name in unlinked_tensorrt(folder):
        pattern = re.compile(rf"{re.escape(name)}\.\d+(\.\d+)*")
        versioned = [path.name for path in folder.glob(f"{name}.*") if pattern.fullmatch(path.name)]
        if not versioned:
            problems.append(f"{folder} has no {name}.<version> to link {name} to")
            continue
        (folder / name).unlink(missing_ok=True)  # dangling: exists() saw nothing behind it
        (folder / name).symlink_to(min(versioned, key=len))
    return problems


def tensorrt_version() -> str | None:
    """The importable TensorRT's version, or None when there is none."""
    try:
        import tensorrt
    except ImportError:
        return None
    return tensorrt.__version__


def build_problems(build: str, tensorrt: bool, found: dict) -> list[str]:
    """Why the installed wheels (as `describe_installed` reports them) are not the wanted build; empty when they are."""
    gpu = build == "gpu"
    problems = []
    if found["compiled_with_cuda"] != gpu:
        problems.append(f"wanted the {build} build of Paddle, found {found['paddle']} with compiled_with_cuda="
                        f"{found['compiled_with_cuda']}")
    if gpu and not found["cuda_libraries_from_wheels"]:
        problems.append("this Paddle build looks for CUDA in the system, not in the nvidia-* wheels")
    if gpu and found["missing_cuda_libraries"]:
        missing = ", ".join(found["missing_cuda_libraries"])
        problems.append(f"CUDA libraries missing from site-packages/nvidia: {missing}")
    if ("CUDAExecutionProvider" in found["providers"]) != gpu:
        problems.append(f"wanted the {build} build of ONNX Runtime, found {found['onnxruntime']} with providers "
                        f"{found['providers']}")
    if tensorrt and found["tensorrt"] is None:
        problems.append("TensorRT was asked for but does not import")
    if tensorrt and found["unlinked_tensorrt"]:
        problems.append(f"Paddle cannot load TensorRT: no {', '.join(found['unlinked_tensorrt'])} in tensorrt_libs "
                        f"(--link-tensorrt adds them)")
    return problems


def check(build: str, tensorrt: bool) -> int:
    """Print what is installed as JSON; exit 1 with the reasons when it is not the wanted build."""
    try:
        found = describe_installed()
    except ImportError as error:  # a switch done by hand removed files the remaining wheel needs
        print(f"paddle_build: {error}; `make install` with --repair (or `python deploy/paddle_build.py {build} "
              f"--repair`) reinstalls both wheels", file=sys.stderr)
        return 1
    print(json.dumps(found))
    problems = build_problems(build, tensorrt, found)
    for problem in problems:
        print(f"paddle_build: {problem}", file=sys.stderr)
    return 1 if problems else 0


def run(steps: list[Step]) -> int:
    """Run the steps in order; stop at the first that fails and return its exit status."""
    for step in steps:
        print(f"paddle_build: {step.why}", flush=True)
        status = subprocess.run(step.argv).returncode
        if status != 0:
            return status
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: the build, what to install, where from, and whether only to print the route."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build", choices=BUILDS)
    parser.add_argument("--project", default=".", help="pip arguments that install the studio (default: .)")
    parser.add_argument("--tensorrt", action="store_true", help="also install TensorRT (gpu only; about 2 GB)")
    parser.add_argument("--paddle-index", default=os.environ.get("PADDLE_GPU_INDEX") or DEFAULT_PADDLE_GPU_INDEX,
                        help="the Paddle index with the CUDA wheel (PADDLE_GPU_INDEX; default: CUDA 12.6)")
    parser.add_argument("--tensorrt-index", default=os.environ.get("TENSORRT_INDEX") or DEFAULT_TENSORRT_INDEX,
                        help="the index with TensorRT's wheels (TENSORRT_INDEX)")
    parser.add_argument("--quiet", action="store_true", help="pass --quiet to pip")
    parser.add_argument("--repair", action="store_true",
                        help="remove both wheels of each pair and reinstall the wanted ones even when no other "
                             "build's wheel is installed (after a `paddle` that no longer imports)")
    parser.add_argument("--check", action="store_true",
                        help="install nothing: only check the installed wheels are this build (the last step)")
    parser.add_argument("--link-tensorrt", action="store_true",
                        help="install nothing: only link TensorRT's libraries under the names Paddle opens (a step)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, one a line, and run none")
    parser.add_argument("--json", action="store_true", help="with --dry-run: print the steps as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Install the build, or with --dry-run print how it would be installed."""
    args = parse_args(argv)
    if args.check:
        return check(args.build, args.tensorrt)
    if args.link_tensorrt:
        problems = link_tensorrt(tensorrt_folder())
        for problem in problems:
            print(f"paddle_build: {problem}", file=sys.stderr)
        return 1 if problems else 0
    try:
        steps = plan(args.build, project=args.project, tensorrt=args.tensorrt, paddle_index=args.paddle_index,
                     tensorrt_index=args.tensorrt_index, quiet=args.quiet, repair=args.repair)
    except ValueError as error:
        print(f"paddle_build: {error}", file=sys.stderr)
        return 2
    if args.dry_run and args.json:
        print(json.dumps({"build": args.build, "tensorrt": args.tensorrt,
                          "steps": [asdict(step) for step in steps]}, indent=2))
    elif args.dry_run:
        print("\n".join(shlex.join(step.argv) for step in steps))
    else:
        return run(steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())

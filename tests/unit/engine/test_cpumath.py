import os
import subprocess
import sys

from engine.cpumath import cpu_facts, mkl_settings

AMD = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\n"
INTEL = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx avx2 avx512f\n"


def test_cpu_facts_reads_the_first_processor():
    assert cpu_facts(AMD) == ("AuthenticAMD", {"fpu", "sse2", "avx", "avx2", "fma"})
    assert cpu_facts("") == ("", set())


def test_mkl_gets_its_avx2_path_only_on_amd_processors_with_avx2():
    assert mkl_settings(*cpu_facts(AMD)) == {"MKL_DEBUG_CPU_TYPE": "5"}
    assert mkl_settings("AuthenticAMD", {"sse2", "avx"}) == {}
    assert mkl_settings(*cpu_facts(INTEL)) == {}


def test_importing_the_engine_applies_the_setting_but_an_operators_value_wins():
    code = "import engine, os; print(os.environ.get('MKL_DEBUG_CPU_TYPE', '-'))"
    env = {k: v for k, v in os.environ.items() if k != "MKL_DEBUG_CPU_TYPE"}
    own = subprocess.run([sys.executable, "-c", code], env={**env, "MKL_DEBUG_CPU_TYPE": "2"},
                         capture_output=True, text=True, check=True)
    assert own.stdout.strip() == "2"
    applied = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    expected = mkl_settings(*cpu_facts()).get("MKL_DEBUG_CPU_TYPE", "-")
    assert applied.stdout.strip() == expected

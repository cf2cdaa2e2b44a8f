#!/usr/bin/env bash
# GPU check of advland: run on one CUDA GPU (at most about 8 minutes) and paste the printed numbers
# into docs/performance.md. Run from the repository root:
#
#     bash benchmarks/gpu_check.sh                      # on the GPU machine
#     GPU_CHECK_DRY_RUN=1 bash benchmarks/gpu_check.sh  # the same steps on the CPU at tiny sizes (< 3 min)
#
# Steps: (1) the tests marked `cuda`; (2) PreActResNet-18 PGD-10 AT on CIFAR-shaped synthetic tensors
# at fp32 / bf16 / bf16+compile, as seconds per 50 000-example epoch (compile excluded); (3) a 21x21
# clean and a 9x9 adversarial surface of that model on 512 examples and its top-5 Hessian eigenvalues;
# (4) `advland train` + `advland eval --attacks pgd` end to end on Fashion-MNIST if its files are
# present (data.root=$FASHION_MNIST_ROOT, default /usr/share/datasets/fashion-mnist).
#
# Dependencies on an offline GPU machine. An image with PyTorch alone lacks at least pydantic, mnist1d
# and pyautoattack (and typer, safetensors, ...). Where a package index is reachable (this repository's
# development machine), download wheels for the GPU machine's Python and platform, then carry them over:
#
#     pip download --dest wheels --only-binary=:all: --python-version 3.11 \
#         --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any \
#         pydantic pydantic-core annotated-types typing-inspection typing-extensions pyyaml typer click \
#         rich shellingham markdown-it-py mdurl pygments safetensors tqdm matplotlib contourpy cycler \
#         fonttools kiwisolver pillow pyparsing python-dateutil six packaging numpy scipy scikit-learn \
#         joblib threadpoolctl mnist1d pyautoattack requests pytest pluggy iniconfig
#     pip wheel --no-deps --wheel-dir wheels .      # advland itself
#
# and on the GPU machine (keeping its own torch):
#
#     pip install --no-index --find-links wheels --no-deps wheels/*.whl
#
# (`pip download` resolves versions for the target named by --python-version/--platform; pure-Python
# packages come as py3-none-any wheels. Leave torch out: the GPU machine's CUDA build stays.)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
FASHION_MNIST_ROOT="${FASHION_MNIST_ROOT:-/usr/share/datasets/fashion-mnist}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

if [[ "${GPU_CHECK_DRY_RUN:-0}" == "1" ]]; then
    DEVICE=cpu
    export OMP_NUM_THREADS=1
    SPEED=(--model mlp --batch 4 --iterations 1)   # an MLP: compiling a CNN takes minutes on a busy CPU
    SURFACE=(--model cnn_small --n 8 --clean-steps 3 --adv-steps 2 --attack-steps 1 --lanczos-steps 8)
    TRAIN=(epochs=1 data.train_n=128 data.val_fraction=0.002 eval.test_n=32 eval.steps=1 threat.steps=1)
    EVAL=(--n 16 --steps 2)
    TESTS=(-m "cuda")           # collected and skipped without a GPU: checks that they import
else
    DEVICE=cuda
    python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible')"
    SPEED=(--model preact_resnet18 --batch 128 --iterations 20)
    SURFACE=(--model preact_resnet18 --n 512 --clean-steps 21 --adv-steps 9 --attack-steps 10 --lanczos-steps 30)
    TRAIN=(epochs=2 eval.test_n=1000)
    EVAL=(--n 1000)
    TESTS=(-m "cuda")
fi
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
start=$SECONDS

echo "== 1. tests marked cuda"
python -m pytest -q -p no:xdist -p no:cacheprovider "${TESTS[@]}" tests/test_cuda.py

echo "== 2. PreActResNet-18 PGD-10 AT speed"
python benchmarks/gpu_check.py speed --device "$DEVICE" "${SPEED[@]}"

echo "== 3. surfaces and Hessian"
python benchmarks/gpu_check.py landscape --device "$DEVICE" "${SURFACE[@]}"

echo "== 4. advland train + eval on Fashion-MNIST"
if [[ -f "$FASHION_MNIST_ROOT/train-images-idx3-ubyte.gz" || -f "$FASHION_MNIST_ROOT/train-images-idx3-ubyte" ]]; then
    advland train digits/at data.name=fashion_mnist "data.root=$FASHION_MNIST_ROOT" threat.eps=0.1 \
        threat.step_size=0.025 "device=$DEVICE" data.batch_size=64 "out_dir=$OUT" name=fmnist "${TRAIN[@]}" --no-progress
    advland eval "$OUT/fmnist" --attacks pgd "${EVAL[@]}" --no-sanity --no-progress
else
    echo "Fashion-MNIST files not found in $FASHION_MNIST_ROOT: step skipped"
fi
echo "== gpu_check done in $((SECONDS - start)) s"

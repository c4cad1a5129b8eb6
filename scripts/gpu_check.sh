#!/usr/bin/env bash
# scripts/gpu_check.sh: the project's GPU checks and full recipes, in one run on a machine with one CUDA GPU
# that reaches no package registry and has none of the project's data.
#
# What it does, in order (each step has its own timeout; a step that fails is reported and the next one
# runs; the exit status is non-zero when any step failed):
#   1. install  pip install --no-index the wheels of .device/wheels (hydra-core, omegaconf,
#               antlr4-python3-runtime: the pure-python dependencies a CUDA image with torch,
#               torchvision, pytorch-lightning, torchmetrics, scikit-learn, rich, tensorboard, matplotlib,
#               safetensors and onnx lacks) into a target folder put on PYTHONPATH, then the project
#               itself (--no-deps --no-build-isolation), and prints the versions and the GPU;
#   2. data     unpacks .device/cifar10-jpeg.tar.gz into .device/data/cifar10-jpeg/{train,test}/<class>/
#               NNNN.jpg and checks its file count and SHA-256 against .device/cifar10-jpeg.sha256;
#   3. tests    pytest on the tests that need CUDA (tests/test_device_data.py, tests/test_speed_options.py
#               and every test file with a skipif(not ...CUDA...) marker);
#   4. check    python scripts/device_data_check.py --require-cuda;
#   5. bench    python -m zoo.bench --device cuda: the loop section (ResNet-20 on the CIFAR-10 JPEG data)
#               and the throughput section with --compile, into results/bench/cuda;
#   6. train    the full ResNet-20 CIFAR-10 recipe (configs/experiment/resnet20_cifar10.yaml, 182 epochs)
#               on the JPEG copy, bf16-mixed, channels_last, torch.compile, seed 0, into
#               results/runs/resnet20_cifar10_jpeg_full/seed0 (the layout `python -m zoo.report results/runs`
#               reads; the name keeps it apart from the CPU rows). A run folder with checkpoints/last.ckpt
#               and no results.json is resumed (ckpt_path=last); a finished one is left alone.
# Then it packs what must come back into $OUT (or .device/out): gpu_check.log (every step's output),
# summary.txt, run-<name>-seed<N>.tar.gz (the run folder, checkpoints included) and bench-cuda.tar.gz
# (results/bench/cuda). Both archives hold paths from the project root: `tar -xzf FILE -C <checkout>`.
#
# Duration: about 8 minutes on one H200. The whole run keeps to GPU_CHECK_BUDGET_S (default 500 s):
# each step stops at its own limit (install 90 s, data 90 s, tests 150 s, check 90 s, bench 150 s) or at
# the budget, and train gets what is left (25 s are kept for packing). A training stopped by the budget
# keeps its last epoch in checkpoints/last.ckpt, inside the archive, and resumes from it on the next run.
#
# Input folder: .device/ in the checkout (git-ignored; ZOO_DEVICE_DIR names another, relative to the
# project root), filled on a machine with pip access and the data by
#     bash scripts/gpu_check.sh --prepare
# which writes
#     .device/wheels/*.whl            one py3-none-any wheel per missing package (pip download for
#                                     Python 3.12; antlr4-python3-runtime 4.9.3 is built from its sdist)
#     .device/cifar10-jpeg.tar.gz     ${ZOO_DATA:-../shared/data}/cifar10-jpeg as tar | gzip -9 (~19 MB:
#                                     the JPEGs hold 52.7 MiB; the shared JPEG headers and tar's padding
#                                     compress away)
#     .device/cifar10-jpeg.sha256     "<sha256 of the sorted files' bytes> <file count>"
# and reports the sizes that travel (the working tree and .device/; 64 MiB at most).
#
# On the device machine, through the device tool (the tool sets $OUT and copies it back):
#     run(command="bash scripts/gpu_check.sh", carry=[".device"], timeout_s=600)
# To resume a training stopped by the budget, unpack its archive into the checkout here and also carry
# "results/runs/resnet20_cifar10_jpeg_full/seed0/checkpoints" (checkpoints are git-ignored).
#
# Usage:
#     bash scripts/gpu_check.sh                    run every step
#     bash scripts/gpu_check.sh --dry-run          check the input folder, print every command, run nothing
#     bash scripts/gpu_check.sh --prepare          fill the input folder here
#     bash scripts/gpu_check.sh --only train       only some steps: install, data, tests, check, bench, train
#                                                  (install, and data for bench and train, are added)
#     bash scripts/gpu_check.sh --verify-data ROOT SUMS   the data step's check of ROOT/cifar10-jpeg
# Environment:
#     ZOO_DEVICE_DIR        the input folder (default .device)
#     OUT                   where the outputs go (default <input folder>/out)
#     PYTHON                the Python to run (default python3; --prepare: .venv/bin/python if present)
#     ZOO_DATA              --prepare: the folder holding cifar10-jpeg/ (default ../shared/data)
#     GPU_CHECK_BUDGET_S    seconds the whole run may take (default 500)
#     GPU_CHECK_SEED        the training seed (default 0)
#     GPU_CHECK_RUN_NAME    the run's folder under results/runs (default resnet20_cifar10_jpeg_full)
#     GPU_CHECK_TRAIN_ARGS  extra train.py overrides, appended (e.g. 'trainer.max_epochs=2' for a smoke run)
#     GPU_CHECK_BENCH_ARGS  zoo.bench options replacing the default sizes (see python -m zoo.bench --help)
#     GPU_CHECK_EXTRA_WHEELS  --prepare: more NAME==VERSION wheels to download
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

die() { echo "gpu_check: $*" >&2; exit 2; }

# ------------------------------------------------------------------ settings
DEV=${ZOO_DEVICE_DIR:-.device}
[[ $DEV == /* ]] || DEV=$ROOT/$DEV
WHEELS=$DEV/wheels
PACK=$DEV/cifar10-jpeg.tar.gz
SUMS=$DEV/cifar10-jpeg.sha256
DATA_ROOT=$DEV/data
OUT_DIR=${OUT:-$DEV/out}
SITE=${TMPDIR:-/tmp}/zoo-gpu-check-site
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET_S:-500}
SEED=${GPU_CHECK_SEED:-0}
RUN_NAME=${GPU_CHECK_RUN_NAME:-resnet20_cifar10_jpeg_full}
RUN_REL=results/runs/$RUN_NAME/seed$SEED
BENCH_REL=results/bench/cuda
EXPERIMENT=resnet20_cifar10
RESERVE=25                   # seconds kept at the end for packing the outputs
# the pure-python packages the project needs and the device image lacks, with their versions when this
# machine has none installed (--prepare takes the versions installed here, so both run the same)
REQUIRED_WHEELS=(hydra-core omegaconf antlr4-python3-runtime)
declare -A DEFAULT_VERSION=([hydra-core]=1.3.2 [omegaconf]=2.3.0 [antlr4-python3-runtime]=4.9.3)

[[ $BUDGET =~ ^[0-9]+$ ]] && (( BUDGET >= 60 )) \
    || die "GPU_CHECK_BUDGET_S=$BUDGET: a whole number of seconds >= 60 is needed; e.g. GPU_CHECK_BUDGET_S=500"
[[ $SEED =~ ^[0-9]+$ ]] || die "GPU_CHECK_SEED=$SEED: a non-negative integer is needed; e.g. GPU_CHECK_SEED=0"
[[ $RUN_NAME =~ ^[A-Za-z0-9._-]+$ ]] \
    || die "GPU_CHECK_RUN_NAME=$RUN_NAME: letters, digits, '.', '_' and '-' only; e.g. resnet20_cifar10_jpeg_full"

ALL_STEPS=(install data tests check bench train)
declare -A CAP=([install]=90 [data]=90 [tests]=150 [check]=90 [bench]=150 [train]=0)   # 0: what is left
declare -A ABOUT=(
    [install]="install the carried wheels and the project, with no package index"
    [data]="unpack the CIFAR-10 JPEG tree and check its files"
    [tests]="the tests that need CUDA"
    [check]="device-resident data equals the CPU path's"
    [bench]="the training loop and model throughput on the GPU"
    [train]="the full recipe of configs/experiment/$EXPERIMENT.yaml ($(sed -n 's/^ *max_epochs: *\([0-9]*\).*/\1/p' \
        "configs/experiment/$EXPERIMENT.yaml" | head -1) epochs) on the JPEG copy, seed $SEED"
)

# ------------------------------------------------------------------ arguments
MODE=run
ONLY=""
while (( $# )); do
    case $1 in
        --dry-run) MODE=dry ;;
        --prepare) MODE=prepare ;;
        --only) (( $# >= 2 )) || die "--only needs a comma-separated list of steps: ${ALL_STEPS[*]}"
                ONLY=$2; shift ;;
        --only=*) ONLY=${1#--only=} ;;
        --verify-data) (( $# == 3 )) || die "--verify-data needs DATA_ROOT and SUMS_FILE"
                       MODE=verify; VERIFY_ROOT=$2; VERIFY_SUMS=$3; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1': use --dry-run, --prepare, --only STEPS or --help" ;;
    esac
    shift
done

declare -A SELECTED=()
if [[ -z $ONLY ]]; then
    for s in "${ALL_STEPS[@]}"; do SELECTED[$s]=1; done
else
    IFS=, read -r -a wanted <<< "$ONLY"
    for s in "${wanted[@]}"; do
        [[ -n $s && -n ${CAP[$s]+x} ]] || die "--only $ONLY: unknown step '$s'; the steps are: ${ALL_STEPS[*]} (e.g. --only tests,check)"
        SELECTED[$s]=1
    done
    if [[ $MODE != prepare ]]; then   # what the selected steps need
        for s in tests check bench train; do [[ -n ${SELECTED[$s]:-} ]] && SELECTED[install]=1; done
        for s in bench train; do [[ -n ${SELECTED[$s]:-} ]] && SELECTED[data]=1; done
    fi
fi
STEPS=()
for s in "${ALL_STEPS[@]}"; do [[ -n ${SELECTED[$s]:-} ]] && STEPS+=("$s"); done

# ------------------------------------------------------------------ helpers
LOG=""
say() { if [[ -n $LOG ]]; then echo "$*" | tee -a "$LOG"; else echo "$*"; fi; }

# a command as one line that a shell reads back: plain words as they are, others in single quotes
quote() {
    local out="" w
    for w in "$@"; do
        if [[ $w =~ ^[A-Za-z0-9_./=:,+@%^-]+$ ]]; then out+="$w "; else out+="'${w//\'/\'\\\'\'}' "; fi
    done
    echo "${out% }"
}

wheel_glob() { echo "$WHEELS/${1//-/_}-*.whl"; }   # a wheel's file name spells its project with '_'

mib() { awk -v b="$1" 'BEGIN { if (b < 1024) printf "%d B", b; else if (b < 1048576) printf "%.0f KiB", b / 1024; else printf "%.1f MiB", b / 1048576 }'; }

# "<sha256> <count>" of the JPEG files below $1/cifar10-jpeg, their bytes concatenated in sorted path order
tree_digest() {
    local n h
    n=$(cd "$1" && find cifar10-jpeg -name '*.jpg' | wc -l)
    h=$(cd "$1" && LC_ALL=C find cifar10-jpeg -name '*.jpg' -print0 | LC_ALL=C sort -z | xargs -0 -r cat | sha256sum)
    echo "${h%% *} $((n))"
}

# bytes of the working tree that travels: tracked and untracked-not-ignored files
tree_bytes() {
    git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s -- 2>/dev/null \
        | awk '{ s += $1 } END { print s + 0 }'
}

# the bytes the device machine receives: the working tree and the whole input folder (carried); returns 1 over 64 MiB
report_sizes() {
    local wt dev_bytes total d
    wt=$(tree_bytes)
    dev_bytes=$(find "$DEV" -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
    total=$((wt + dev_bytes))
    say "sizes that travel: working tree $(mib "$wt") + ${DEV#"$ROOT"/} $(mib "$dev_bytes") = $(mib "$total") of 64 MiB"
    for d in data cache out; do
        [[ -e $DEV/$d ]] && say "  note: ${DEV#"$ROOT"/}/$d (made by a run here) would travel too: rm -rf ${DEV#"$ROOT"/}/$d"
    done
    if [[ $DEV == "$ROOT"/* ]] && [[ -e $DEV ]] && ! git check-ignore -q "$DEV" 2>/dev/null; then
        say "  note: ${DEV#"$ROOT"/} is not git-ignored: it would travel uncarried and could be committed"
    fi
    (( total <= 64 * 1048576 ))
}

# what the selected steps need from the input folder; prints the report; returns the number missing
check_inputs() {
    local missing=0 name files n need_wheels="" need_data=""
    [[ -n ${SELECTED[install]:-} ]] && need_wheels=1
    [[ -n ${SELECTED[data]:-} ]] && need_data=1
    say "input folder $DEV:"
    if [[ -n $need_wheels ]]; then
        for name in "${REQUIRED_WHEELS[@]}"; do
            mapfile -t files < <(compgen -G "$(wheel_glob "$name")" || true)
            n=${#files[@]}
            if (( n == 0 )); then
                say "  missing: a wheel of $name ($(wheel_glob "$name"))"; missing=$((missing + 1))
            elif (( n > 1 )); then
                say "  $n wheels of $name (${files[*]##*/}): keep one version (pip refuses two); --prepare replaces them"
                missing=$((missing + 1))
            else
                say "  ok: ${files[0]#"$DEV"/}"
            fi
        done
    fi
    if [[ -n $need_data ]]; then
        for f in "$PACK" "$SUMS"; do
            if [[ -s $f ]]; then say "  ok: ${f#"$DEV"/} ($(mib "$(stat -c %s "$f")"))"
            else say "  missing: $f"; missing=$((missing + 1)); fi
        done
    fi
    if (( missing )); then
        say "  $missing input(s) missing. Fill the folder on a machine with pip access and the data:"
        say "      bash scripts/gpu_check.sh --prepare      (ZOO_DATA: the folder holding cifar10-jpeg/; default ../shared/data)"
    else
        say "  complete"
    fi
    return "$missing"
}

# ------------------------------------------------------------------ --verify-data (used by the data step)
if [[ $MODE == verify ]]; then
    [[ -s $VERIFY_SUMS ]] || die "--verify-data: no checksum file $VERIFY_SUMS; run --prepare"
    read -r want_sha want_n < "$VERIFY_SUMS"
    read -r got_sha got_n < <(tree_digest "$VERIFY_ROOT")
    if [[ $got_sha == "$want_sha" && $got_n == "$want_n" ]]; then
        echo "$VERIFY_ROOT/cifar10-jpeg: $got_n files, sha256 $got_sha: as packed"
        exit 0
    fi
    echo "$VERIFY_ROOT/cifar10-jpeg: $got_n files, sha256 $got_sha; packed: $want_n files, sha256 $want_sha." \
         "The archive or its unpacking is damaged: run --prepare again" >&2
    exit 1
fi

# ------------------------------------------------------------------ --prepare
if [[ $MODE == prepare ]]; then
    if [[ -z ${PYTHON:-} && -x $ROOT/.venv/bin/python ]]; then PY=$ROOT/.venv/bin/python; fi
    mkdir -p "$DEV"
    if [[ -n ${SELECTED[install]:-} ]]; then
        mkdir -p "$WHEELS"
        specs=()
        for name in "${REQUIRED_WHEELS[@]}"; do
            v=$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name" 2>/dev/null \
                || echo "${DEFAULT_VERSION[$name]}")
            specs+=("$name==$v")
        done
        read -r -a extra <<< "${GPU_CHECK_EXTRA_WHEELS:-}"
        for spec in "${specs[@]}" "${extra[@]}"; do
            [[ $spec =~ ^[A-Za-z0-9._-]+==[A-Za-z0-9.+!_-]+$ ]] \
                || die "GPU_CHECK_EXTRA_WHEELS: '$spec' is not NAME==VERSION; e.g. GPU_CHECK_EXTRA_WHEELS='pyyaml==6.0.2'"
            name=${spec%%==*}
            mapfile -t old < <(compgen -G "$(wheel_glob "$name")" || true)
            rm -f -- "${old[@]}"   # one version of each: two stop the install there
            echo "== $spec"
            if ! first=$("$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
                    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
                    -d "$WHEELS" "$spec" 2>&1); then
                echo "   no wheel on the index: building one from the source distribution (pure python)"
                "$PY" -m pip wheel --quiet --no-deps -w "$WHEELS" "$spec" \
                    || die "$spec: neither a wheel nor a buildable source distribution was found (pip download said: $(grep ERROR <<< "$first" | head -2)); check the name and version"
            fi
            mapfile -t got < <(compgen -G "$(wheel_glob "$name")" || true)
            (( ${#got[@]} == 1 )) || die "$spec: expected one wheel $(wheel_glob "$name"), found ${#got[@]}"
            [[ ${got[0]} == *-none-any.whl ]] \
                || echo "   note: ${got[0]##*/} is not pure python; it runs only on the platform it was built for"
            echo "   ${got[0]#"$ROOT"/} ($(mib "$(stat -c %s "${got[0]}")"))"
        done
    fi
    if [[ -n ${SELECTED[data]:-} ]]; then
        src=${ZOO_DATA:-../shared/data}
        [[ $src == /* ]] || src=$ROOT/$src
        [[ -d $src/cifar10-jpeg/train && -d $src/cifar10-jpeg/test ]] \
            || die "no CIFAR-10 JPEG tree at $src/cifar10-jpeg (train/ and test/ expected): set ZOO_DATA to the folder that holds cifar10-jpeg/, e.g. ZOO_DATA=../shared/data"
        echo "== packing $src/cifar10-jpeg"
        tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$src" -cf - cifar10-jpeg \
            | gzip -9n > "$PACK.tmp"
        mv "$PACK.tmp" "$PACK"
        tree_digest "$src" > "$SUMS.tmp" && mv "$SUMS.tmp" "$SUMS"
        read -r sha n < "$SUMS"
        raw=$(find "$src/cifar10-jpeg" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
        echo "   $n JPEG files, $(mib "$raw") of bytes -> ${PACK#"$ROOT"/}: $(mib "$(stat -c %s "$PACK")") (sha256 of the files $sha)"
    fi
    for d in data cache out; do   # made by a run here; carrying the folder would send them too
        [[ -e $DEV/$d ]] && { echo "== removing ${DEV#"$ROOT"/}/$d (made by an earlier run; it would travel with the folder)"; rm -rf "${DEV:?}/$d"; }
    done
    report_sizes || die "over the 64 MiB the device machine receives: remove large untracked files or carry less"
    check_inputs || true
    echo "On the device machine: run(command=\"bash scripts/gpu_check.sh\", carry=[\"${DEV#"$ROOT"/}\"], timeout_s=600)"
    exit 0
fi

# ------------------------------------------------------------------ run / dry run
DRY=""
[[ $MODE == dry ]] && DRY=1
if [[ -z $DRY ]]; then
    mkdir -p "$OUT_DIR"
    LOG=$OUT_DIR/gpu_check.log
    : > "$LOG"
fi
START=$SECONDS
DEADLINE=$((START + BUDGET - RESERVE))
STEP_DEADLINE=$DEADLINE
export PYTHONUNBUFFERED=1 ZOO_CACHE=${ZOO_CACHE:-$DEV/cache}

say "gpu_check: $(date -u +%Y-%m-%dT%H:%M:%SZ) in $ROOT; steps: ${STEPS[*]}; budget ${BUDGET} s; outputs: $OUT_DIR${DRY:+ (dry run: nothing is run)}"
if ! check_inputs; then
    if [[ -z $DRY ]]; then say "gpu_check: stopped before running anything: inputs missing (see above)"; exit 2; fi
fi
if [[ -n $DRY ]]; then
    if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
        report_sizes || say "  over the 64 MiB the device machine receives: remove large untracked files or carry less"
    fi
    say "device tool: run(command=\"bash scripts/gpu_check.sh\", carry=[\"${DEV#"$ROOT"/}\"], timeout_s=600)"
fi

# run_cmd CMD...: prints the command; in a real run, runs it until the step's deadline, its output in the log
run_cmd() {
    say "\$ $(quote "$@")"
    [[ -n $DRY ]] && return 0
    local left=$((STEP_DEADLINE - SECONDS))
    if (( left < 5 )); then say "   (not run: the step's time is used up)"; return 124; fi
    timeout --kill-after=15 "$left" "$@" 2>&1 | tee -a "$LOG"
    return "${PIPESTATUS[0]}"
}

INSTALL_NOTE=""
step_install() {
    local wheels
    mapfile -t wheels < <(compgen -G "$WHEELS/*.whl" || true)
    (( ${#wheels[@]} )) || wheels=("$WHEELS/*.whl")
    run_cmd "$PY" -m pip install --no-index --no-deps --no-cache-dir --no-compile --upgrade --target "$SITE" \
        "${wheels[@]}" || return $?
    export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
    say "\$ export PYTHONPATH=$PYTHONPATH"
    # the project from this tree, its dependencies being the image's and the wheels' (train.py, pytest and
    # python -m zoo.bench, run from the project root, import this tree's zoo first)
    run_cmd "$PY" -m pip install --no-index --find-links "$WHEELS" --no-deps --no-build-isolation --no-cache-dir \
        --no-compile --upgrade --target "$SITE" "$ROOT" \
        || INSTALL_NOTE="the project's own install failed (see the log); the steps run it from the source tree"
    run_cmd "$PY" -c 'import sys, torch, hydra, omegaconf, pytorch_lightning as pl, zoo; c = torch.cuda.is_available(); print("python", sys.version.split()[0], "torch", torch.__version__, "lightning", pl.__version__, "hydra", hydra.__version__, "omegaconf", omegaconf.__version__, "zoo", zoo.__file__, "cuda", torch.cuda.get_device_name(0) if c else "not available")'
}

step_data() {
    if [[ -z $DRY && -d $DATA_ROOT/cifar10-jpeg ]] \
            && bash "$ROOT/scripts/gpu_check.sh" --verify-data "$DATA_ROOT" "$SUMS" > /dev/null 2>&1; then
        say "   $DATA_ROOT/cifar10-jpeg is already unpacked and as packed: kept"
        return 0
    fi
    run_cmd rm -rf "$DATA_ROOT/cifar10-jpeg" || return $?
    run_cmd mkdir -p "$DATA_ROOT" || return $?
    run_cmd tar -xzf "$PACK" -C "$DATA_ROOT" || return $?
    run_cmd bash "$ROOT/scripts/gpu_check.sh" --verify-data "$DATA_ROOT" "$SUMS"
}

step_tests() {
    local files=(tests/test_device_data.py tests/test_speed_options.py) f
    for f in $(grep -lE 'skip(if)?\( *not [A-Za-z_.()]*(CUDA|cuda)' tests/test_*.py 2>/dev/null || true); do
        [[ " ${files[*]} " == *" $f "* ]] || files+=("$f")
    done
    run_cmd "$PY" -m pytest -q -p no:cacheprovider "${files[@]}"
}

step_check() {
    run_cmd "$PY" scripts/device_data_check.py --require-cuda
}

step_bench() {
    local sizes
    read -r -a sizes <<< "${GPU_CHECK_BENCH_ARGS:---sections loop,throughput --compile --threads 4 --repeats 3 --warmup 1 --steps 30 --loop-warmup 5 --throughput-models resnet20 --min-sample-s 0.1}"
    run_cmd "$PY" -m zoo.bench --device cuda --out "$ROOT/$BENCH_REL" --data-root "$DATA_ROOT" \
        --loop-overrides "experiment=$EXPERIMENT data=cifar10_jpeg" "${sizes[@]}"
}

step_train() {
    local run_dir=$ROOT/$RUN_REL extra=() more
    if [[ -f $run_dir/results.json ]]; then
        say "   $RUN_REL already holds a finished run (results.json): not trained again (GPU_CHECK_RUN_NAME or GPU_CHECK_SEED name another)"
        return 0
    elif [[ -f $run_dir/checkpoints/last.ckpt ]]; then
        say "   $RUN_REL holds an unfinished run with checkpoints/last.ckpt: resumed"
        extra=(ckpt_path=last)
    elif [[ -d $run_dir ]]; then
        say "   $RUN_REL holds an unfinished run without checkpoints: started again (overwrite=true)"
        extra=(overwrite=true)
    fi
    read -r -a more <<< "${GPU_CHECK_TRAIN_ARGS:-}"
    run_cmd "$PY" train.py "experiment=$EXPERIMENT" data=cifar10_jpeg "data.root=$DATA_ROOT" trainer=gpu \
        trainer.precision=bf16-mixed channels_last=true compile=true "seed=$SEED" callbacks.rich_progress_bar=null \
        "hydra.run.dir=$run_dir" "${extra[@]}" "${more[@]}"
}

declare -A STATUS=() SECS=()
FAILED=0
i=0
for s in "${STEPS[@]}"; do
    i=$((i + 1))
    now=$SECONDS
    cap=${CAP[$s]}
    STEP_DEADLINE=$DEADLINE
    (( cap > 0 && now + cap < DEADLINE )) && STEP_DEADLINE=$((now + cap))
    if [[ -n $DRY ]]; then
        limit=$([[ $cap == 0 ]] && echo "what is left of the ${BUDGET} s budget" || echo "${cap} s")
    else
        limit="$((STEP_DEADLINE - now)) s"
    fi
    say ""
    say "== step $i/${#STEPS[@]} $s: ${ABOUT[$s]} (timeout: $limit)"
    dep=""
    [[ -n $DRY ]] || case $s in
        tests|check) [[ ${STATUS[install]:-ok} == ok* ]] || dep=install ;;
        bench|train) [[ ${STATUS[install]:-ok} == ok* ]] || dep=install
                     [[ ${STATUS[data]:-ok} == ok* ]] || dep=${dep:-data} ;;
    esac
    if [[ -n $dep ]]; then
        STATUS[$s]="skipped: the $dep step failed"; SECS[$s]=0; FAILED=$((FAILED + 1))
        say "   ${STATUS[$s]}"; continue
    fi
    if [[ -z $DRY ]] && (( STEP_DEADLINE - now < 10 )); then
        STATUS[$s]="skipped: the ${BUDGET} s budget is used up"; SECS[$s]=0; FAILED=$((FAILED + 1))
        say "   ${STATUS[$s]}"; continue
    fi
    rc=0
    "step_$s" || rc=$?
    SECS[$s]=$((SECONDS - now))
    if [[ -n $DRY ]]; then STATUS[$s]="printed"
    elif (( rc == 0 )); then STATUS[$s]="ok"
    elif (( rc == 124 || rc == 137 )); then STATUS[$s]="timed out after ${SECS[$s]} s"; FAILED=$((FAILED + 1))
    else STATUS[$s]="failed (exit status $rc)"; FAILED=$((FAILED + 1)); fi
    [[ -z $DRY ]] && say "   -> $s: ${STATUS[$s]} (${SECS[$s]} s)"
done

# ------------------------------------------------------------------ outputs and summary
say ""
say "== outputs into $OUT_DIR"
RUN_TAR=$OUT_DIR/run-$RUN_NAME-seed$SEED.tar.gz
BENCH_TAR=$OUT_DIR/bench-cuda.tar.gz
STEP_DEADLINE=$((SECONDS + RESERVE))
if [[ -n $DRY || -d $ROOT/$RUN_REL ]]; then run_cmd tar -C "$ROOT" -czf "$RUN_TAR" "$RUN_REL" || true; fi
if [[ -n $DRY || -d $ROOT/$BENCH_REL ]]; then run_cmd tar -C "$ROOT" -czf "$BENCH_TAR" "$BENCH_REL" || true; fi
if [[ -n $DRY ]]; then
    say ""
    say "gpu_check: dry run: ${#STEPS[@]} step(s) printed; nothing was run"
    exit 0
fi

{
    echo "gpu_check summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), $((SECONDS - START)) s of the ${BUDGET} s budget)"
    for s in "${STEPS[@]}"; do printf '  %-8s %-40s %5s s\n' "$s" "${STATUS[$s]}" "${SECS[$s]}"; done
    [[ -n $INSTALL_NOTE ]] && echo "  note: $INSTALL_NOTE"
    if [[ -f $ROOT/$RUN_REL/results.json ]]; then
        "$PY" - "$ROOT/$RUN_REL/results.json" <<'EOF' || true
import json, sys
r = json.load(open(sys.argv[1]))
acc = r.get("test/acc")
acc = f"test accuracy {acc * 100:.2f}%" if isinstance(acc, (int, float)) else "no test accuracy"
print(f"  run: status {r.get('status')}, {r.get('epochs')} epochs, {acc}, "
      f"{r.get('train_seconds')} s of training on {r.get('device')}")
EOF
    elif [[ -f $ROOT/$RUN_REL/checkpoints/last.ckpt ]]; then
        echo "  run: unfinished; checkpoints/last.ckpt is in the archive: unpack it here and run again carrying"
        echo "       \"$RUN_REL/checkpoints\" to resume"
    fi
    if [[ -f $ROOT/$BENCH_REL/bench.json ]]; then
        "$PY" - "$ROOT/$BENCH_REL/bench.json" <<'EOF' || true
import json, sys
d = json.load(open(sys.argv[1]))
sections = d.get("sections") or {}
print("  bench:", ", ".join(f"{k} {v.get('status')} ({v.get('seconds')} s)" for k, v in sections.items()) or "no sections")
EOF
    fi
    for f in "$RUN_TAR" "$BENCH_TAR"; do
        [[ -f $f ]] || continue
        size=$(stat -c %s "$f")
        echo "  $(basename "$f"): $(mib "$size")$( (( size > 16 * 1048576 )) && echo ' (over the 16 MiB the device tool returns)')"
    done
    echo "  unpack in the checkout: tar -xzf <file> -C <project root>"
    echo "  $( (( FAILED )) && echo "$FAILED step(s) failed or skipped" || echo "every step passed")"
} > "$OUT_DIR/summary.txt"
say ""
cat "$OUT_DIR/summary.txt" | tee -a "$LOG"
(( FAILED == 0 )) || exit 1
exit 0

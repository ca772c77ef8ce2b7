"""Write ../showcase.jsonl: the scripted model side of the zig-infer showcase.

Attempts (each applies to the state after the earlier ACCEPTED ones):
  001 SIMD dot products / matvec            -> accept
  002 matvec rows over both cores (pool)    -> accept
  003 approximate exp (Schraudolph)         -> reject: logits leave the tolerance, tests fail
  004 four-row register blocking in matvec  -> accept
Run from anywhere: python targets/zig-infer/showcase/make_transcript.py [OUT]  (default ../showcase.jsonl)
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))  # the repo root, for agent.transcript
sys.path.insert(0, str(HERE))

import edits  # noqa: E402

from agent.transcript import Transcript  # noqa: E402


def variant(name: str) -> str:
    return (HERE / name).read_text()


def main() -> None:
    t = Transcript(note="Scripted showcase transcript for zig-infer: written by the Nightshift developers, "
                        "not recorded from Kimi K2.6. Every measurement is live.")
    t.plan([
        {"title": "SIMD dot products in matvec and attention",
         "hypothesis": "ops.matvec and ops.dot are scalar loops whose single accumulator serialises every add; "
                       "@Vector(16, f32) with four independent accumulators does 64 multiply-adds per step.",
         "files": ["src/ops.zig"], "expected_gain": "2-4x decode"},
        {"title": "Split matrix-vector rows over both cores",
         "hypothesis": "Decode is one thread; a persistent helper thread taking row chunks halves matvec time "
                       "without per-call thread creation.",
         "files": ["src/ops.zig", "src/pool.zig"], "expected_gain": "1.3-1.8x decode"},
        {"title": "Cheaper exp in softmax and SiLU",
         "hypothesis": "The profile shows libm exp under softmax and silu; a bit-trick exponential is one FMA.",
         "files": ["src/ops.zig"], "expected_gain": "5-10% decode"},
        {"title": "Register-block four rows per pass in matvec",
         "hypothesis": "Each row reloads x; computing four rows per pass loads each x vector once for four "
                       "rows and gives four independent FMA chains.",
         "files": ["src/ops.zig"], "expected_gain": "5-15% decode"},
    ], reasoning="The profile is dominated by ops.matvec (projections and the tied output head) and by "
                 "ops.dot inside attention over a long KV cache; everything is single-threaded scalar fp32.")

    t.attempt([
        ("Look at the kernels first.", [("read_file", {"path": "src/ops.zig"})]),
        ("Vectorise dot with four 16-lane accumulators and route matvec through it.",
         [("write_file", {"path": "src/ops.zig", "content": variant("ops_1_simd.zig")})]),
        ("Build and check correctness.", [("run_build", {}), ("run_tests", {})]),
        ("Tests pass; measure.", [("run_benchmark", {})]),
        ("Done.", [("finish", {"summary": "SIMD dot product (@Vector(16, f32), four accumulators) used by "
                                          "matvec and attention scores."})]),
    ])
    t.attempt([
        ("matvec is now the whole profile and runs on one core.", [("read_file", {"path": "src/ops.zig"})]),
        ("Add a helper-thread pool that claims row chunks from a shared counter.",
         [("write_file", {"path": "src/pool.zig", "content": variant("pool.zig")})]),
        ("Use it from matvec, keeping small products on the calling thread.",
         [("write_file", {"path": "src/ops.zig", "content": variant("ops_2_threads.zig")})]),
        ("Build and test.", [("run_build", {}), ("run_tests", {})]),
        ("Measure.", [("run_benchmark", {})]),
        ("Done.", [("finish", {"summary": "matvec rows split over both cores via a spinning helper thread "
                                          "with chunked work claiming."})]),
    ])
    t.attempt([
        ("Replace exp in silu and softmax with a Schraudolph approximation.",
         [("edit_file", {"path": "src/ops.zig", "old": edits.FAST_EXP_OLD_SILU, "new": edits.FAST_EXP_NEW_SILU}),
          ("edit_file", {"path": "src/ops.zig", "old": edits.FAST_EXP_OLD_SOFTMAX,
                         "new": edits.FAST_EXP_NEW_SOFTMAX})]),
        ("Build and test.", [("run_build", {}), ("run_tests", {})]),
        ("The logits drift past the reference tolerance and greedy tokens change: a few percent error in exp "
         "is too much. Submitting anyway so the record shows it; the harness will reject it.",
         [("finish", {"summary": "Approximate exp in softmax/SiLU. Tests fail (logits outside tolerance)."})]),
    ])
    t.attempt([
        ("Block matvec over four rows so each x vector is loaded once per four rows.",
         [("read_file", {"path": "src/ops.zig"})]),
        ("Rewrite Matvec.rows with a four-row inner kernel and a one-row tail.",
         [("write_file", {"path": "src/ops.zig", "content": variant("ops_4_rows4.zig")})]),
        ("Build and test.", [("run_build", {}), ("run_tests", {})]),
        ("Measure.", [("run_benchmark", {})]),
        ("Done.", [("finish", {"summary": "Four-row register blocking in matvec."})]),
    ])
    t.write(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent / "showcase.jsonl")


if __name__ == "__main__":
    main()

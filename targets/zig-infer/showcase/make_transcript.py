"""Write ../showcase.jsonl: the scripted model side of the zig-infer showcase.

Attempts (each starts from the best state so far; the edits of each touch regions or files no
earlier attempt touches, so they apply whatever the earlier verdicts were):
  1 SIMD matvec (four-row blocking) and dot            src/ops.zig matvec, dot
  2 vectorised softmax with an accurate polynomial exp src/ops.zig softmax
  3 attention heads over both cores, transposed keys   src/attention.zig + parallel.zig (new), model.zig attention
  4 approximate exp in SiLU -> rejected: logits leave the tolerance, tests fail   src/ops.zig silu
  5 matvec rows over both cores                        src/parallel.zig (same content), model.zig matvec calls
  6 rotary angles once per token                       src/ops.zig rope
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

Call = tuple[str, dict]


def edit_calls(batch: list[edits.Edit]) -> list[Call]:
    return [("edit_file", {"path": path, "old": old, "new": new}) for path, old, new in batch]


def write_call(name: str) -> Call:
    return ("write_file", {"path": f"src/{name}", "content": (HERE / name).read_text()})


def main() -> None:
    t = Transcript(note="Scripted showcase transcript for zig-infer: written by the Nightshift developers, "
                        "not recorded from Kimi K2.6. Every measurement is live.")
    t.plan([
        {"title": "SIMD matrix-vector products and dot products",
         "hypothesis": "ops.matvec and ops.dot are scalar loops whose single accumulator serialises every add; "
                       "@Vector(16, f32) with four rows per pass (each x vector loaded once for four rows) and "
                       "fused multiply-adds keeps the FMA units busy.",
         "files": ["src/ops.zig"], "expected_gain": "2-3x decode"},
        {"title": "Vectorised softmax with a polynomial exp",
         "hypothesis": "The profile shows compiler_rt exp_f32 and ldexp under softmax: one libm call per cached "
                       "position per head per layer. A 16-lane exp (range reduction + degree-6 polynomial, ~1 ulp) "
                       "keeps full accuracy.",
         "files": ["src/ops.zig"], "expected_gain": "10-20% decode"},
        {"title": "Attention over both cores with a transposed key cache",
         "hypothesis": "At 3500 tokens of context attention is the largest cost and runs on one core. Query "
                       "heads are independent: spread them over a helper-thread pool, two heads that share a KV "
                       "head per task so each pass over the cache serves both. Storing keys as "
                       "[head_dim][position] turns the scores into vector FMAs over 64 positions at a time, "
                       "with no horizontal sums.",
         "files": ["src/attention.zig", "src/model.zig"], "expected_gain": "1.5-2x decode"},
        {"title": "Approximate exp in SiLU",
         "hypothesis": "SiLU calls exp once per MLP unit; a bit-trick exponential is one multiply-add.",
         "files": ["src/ops.zig"], "expected_gain": "2-5% decode"},
        {"title": "Split matrix-vector rows over both cores",
         "hypothesis": "The projections still run on one thread. The helper thread claiming row chunks from the "
                       "back while the caller claims from the front halves matvec time and keeps each core's "
                       "half of the weights in its own L2; q/k/v and gate/up become one job each.",
         "files": ["src/parallel.zig", "src/model.zig"], "expected_gain": "1.3-1.7x decode"},
        {"title": "Rotary angles once per token",
         "hypothesis": "ops.rope calls pow, cos and sin in f64 for every pair of every head of every layer, "
                       "though all of them use the same angles at a position; compute the table once per token.",
         "files": ["src/ops.zig"], "expected_gain": "1-5% decode"},
    ], reasoning="The profile is all model.forward (scalar matvec and attention loops inlined) plus compiler_rt "
                 "exp/ldexp from softmax; everything is single-threaded scalar fp32. The weights are small "
                 "(~2 MB) and the context long, so the work is compute bound: vectorise, then use both cores, "
                 "attention first since it is the larger share.")

    t.attempt([
        ("Look at the kernels first.", [("read_file", {"path": "src/ops.zig"})]),
        ("Vectorise matvec (four rows per pass, 16 lanes) and dot; float mode optimized allows FMA and "
         "tree reductions, well inside the 1e-3 logit tolerance.", edit_calls(edits.SIMD)),
        ("Build and check correctness.", [("run_build", {}), ("run_tests", {})]),
        ("Tests pass; measure.", [("run_benchmark", {})]),
        ("Done.", [("finish", {"summary": "SIMD matvec (@Vector(16, f32), four rows per pass, FMA) and SIMD dot "
                                          "for attention scores."})]),
    ])
    t.attempt([
        ("What is left in the profile of the current best?", [("show_profile", {})]),
        ("Softmax calls @exp per element, which is compiler_rt's scalar exp_f32 + ldexp.",
         [("search", {"pattern": "@exp"})]),
        ("Vectorise softmax with a Cephes-style exp: exact range reduction, degree-6 polynomial, exponent "
         "bits for 2^n. About 1 ulp, so the logits stay well inside tolerance.", edit_calls(edits.EXP_SOFTMAX)),
        ("Build and test.", [("run_build", {}), ("run_tests", {})]),
        ("Measure.", [("run_benchmark", {})]),
        ("Done.", [("finish", {"summary": "16-lane softmax with a polynomial exp (~1 ulp) instead of libm exp."})]),
    ])
    t.attempt([
        ("Attention is the inline loop in forward; read it.", [("read_file", {"path": "src/model.zig"})]),
        ("Attention gets its own module: heads over a helper-thread pool (parallel.zig: the caller claims "
         "chunks from the front, the helper from the back), transposed keys, vector FMAs.",
         [write_call("parallel.zig"), write_call("attention.zig")]),
        ("Store keys transposed and call the new module.", edit_calls(edits.ATTENTION)),
        ("Build and test.", [("run_build", {}), ("run_tests", {})]),
        ("Measure.", [("run_benchmark", {})]),
        ("Done.", [("finish", {"summary": "Attention heads spread over both cores; key cache stored "
                                          "[head_dim][position] so scores are vector FMAs over 64 positions."})]),
    ])
    t.attempt([
        ("Replace exp in SiLU with a Schraudolph approximation.", edit_calls(edits.FAST_EXP)),
        ("Build and test.", [("run_build", {}), ("run_tests", {})]),
        ("The logits drift past the reference tolerance and greedy tokens change: a few percent error in exp "
         "is too much. Submitting anyway so the record shows it; the harness will reject it.",
         [("finish", {"summary": "Approximate exp in SiLU. Tests fail (logits outside tolerance)."})]),
    ])
    t.attempt([
        ("matvec is now the largest cost and runs on one core. See how forward calls it.",
         [("read_file", {"path": "src/model.zig"})]),
        ("parallel.zig (written with the attention change) already has matvec/matvecs on the pool; write it "
         "as it stands so this change does not depend on that one.", [write_call("parallel.zig")]),
        ("Route every projection through it; q/k/v and gate/up as one job each.", edit_calls(edits.THREADS)),
        ("Build and test.", [("run_build", {}), ("run_tests", {})]),
        ("Measure.", [("run_benchmark", {})]),
        ("Done.", [("finish", {"summary": "matvec rows shared by both cores (helper thread claims chunks from the "
                                          "back, caller from the front); fused q/k/v and gate/up jobs."})]),
    ])
    t.attempt([
        ("rope recomputes pow/cos/sin per head per layer.", [("read_file", {"path": "src/ops.zig"})]),
        ("Cache the cos/sin table of the last position; same f64 maths, so bit-identical results.",
         edit_calls(edits.ROPE)),
        ("Build and test.", [("run_build", {}), ("run_tests", {})]),
        ("Measure.", [("run_benchmark", {})]),
        ("Done.", [("finish", {"summary": "Rotary cos/sin computed once per token instead of per head and layer."})]),
    ])
    t.write(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent / "showcase.jsonl")


if __name__ == "__main__":
    main()

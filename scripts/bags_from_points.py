"""Turn a dataset with classed points into one an llp model counts and trains on: every image a bag.

Usage: python3 scripts/bags_from_points.py DATASET

Writes DATASET/counts.csv (image,count: all points of the image, every class) and DATASET/proportions.csv
(image,class,fraction: the image's share of each class, in the order the classes first appear). An existing
counts.csv or proportions.csv is refused unless --overwrite. Standard library only.
Used for samples/llp-fluo (the exemplar recipe's counts.csv counts only the kind of interest; llp counts all).
"""
import argparse
import collections
import csv
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("--overwrite", action="store_true", help="replace counts.csv / proportions.csv")
    a = ap.parse_args()
    points = os.path.join(a.dataset, "points.csv")
    if not os.path.isfile(points):
        sys.exit(f"error: {points} does not exist")
    per_image = collections.OrderedDict()
    classes = []
    with open(points, newline="") as f:
        rows = csv.DictReader(f)
        if not rows.fieldnames or "image" not in rows.fieldnames or "class" not in rows.fieldnames:
            sys.exit(f"error: {points} needs the columns image and class (got {rows.fieldnames})")
        for line, r in enumerate(rows, start=2):
            if not r["class"]:
                sys.exit(f"error: {points} line {line}: a point without a class")
            per_image.setdefault(r["image"], collections.Counter())[r["class"]] += 1
            if r["class"] not in classes:
                classes.append(r["class"])
    if not per_image:
        sys.exit(f"error: {points} has no points")
    # Images listed in split.csv without a point are bags of zero cells: count 0, no proportions.
    split = os.path.join(a.dataset, "split.csv")
    if os.path.isfile(split):
        with open(split, newline="") as f:
            for r in csv.DictReader(f):
                per_image.setdefault(r["image"], collections.Counter())
    out = {n: os.path.join(a.dataset, n) for n in ("counts.csv", "proportions.csv")}
    if not a.overwrite:
        for p in out.values():
            if os.path.exists(p):
                sys.exit(f"error: {p} exists (--overwrite replaces it)")
    with open(out["counts.csv"], "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["image", "count"])
        for image, c in per_image.items():
            w.writerow([image, sum(c.values())])
    with open(out["proportions.csv"], "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["image", "class", "fraction"])
        for image, c in per_image.items():
            n = sum(c.values())
            if n:
                for k in classes:
                    w.writerow([image, k, f"{c[k] / n:.6g}"])
    print(f"{len(per_image)} images, {len(classes)} classes ({', '.join(classes)}): wrote {out['counts.csv']}, "
          f"{out['proportions.csv']}")


if __name__ == "__main__":
    main()

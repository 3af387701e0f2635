"""scripts/bags_from_points.py: the counts and per-image proportions an llp sample folder is given (issue 22)."""
import csv
import subprocess
import sys


def run(repo, *args):
    return subprocess.run([sys.executable, str(repo / "scripts" / "bags_from_points.py"), *map(str, args)],
                          capture_output=True, text=True)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_counts_and_fractions_from_classed_points(repo, tmp_path):
    (tmp_path / "points.csv").write_text("image,x,y,class\na.png,1,1,big\na.png,2,2,small\na.png,3,3,small\n"
                                         "b.png,4,4,small\n")
    (tmp_path / "split.csv").write_text("image,split\na.png,test\nb.png,test\nempty.png,test\n")
    r = run(repo, tmp_path)
    assert r.returncode == 0, r.stderr
    assert rows(tmp_path / "counts.csv") == [{"image": "a.png", "count": "3"}, {"image": "b.png", "count": "1"},
                                             {"image": "empty.png", "count": "0"}]
    fr = {(x["image"], x["class"]): float(x["fraction"]) for x in rows(tmp_path / "proportions.csv")}
    want = {("a.png", "big"): 1 / 3, ("a.png", "small"): 2 / 3, ("b.png", "big"): 0.0, ("b.png", "small"): 1.0}
    assert fr.keys() == want.keys() and all(abs(fr[k] - v) < 1e-6 for k, v in want.items())
    assert len(fr) == 4  # an image without cells has no fractions (a bag of zero cells)
    # An existing file is never replaced without --overwrite.
    before = (tmp_path / "counts.csv").read_text()
    r = run(repo, tmp_path)
    assert r.returncode != 0 and "exists" in r.stderr
    assert (tmp_path / "counts.csv").read_text() == before


def test_points_without_a_class_are_refused(repo, tmp_path):
    (tmp_path / "points.csv").write_text("image,x,y\na.png,1,1\n")
    r = run(repo, tmp_path)
    assert r.returncode != 0 and "class" in r.stderr
    assert not (tmp_path / "counts.csv").exists()


def test_the_llp_fluo_sample_is_what_the_script_makes(repo, tmp_path):
    sample = repo / "samples" / "llp-fluo"
    (tmp_path / "points.csv").write_text((sample / "points.csv").read_text())
    (tmp_path / "split.csv").write_text((sample / "split.csv").read_text())
    assert run(repo, tmp_path).returncode == 0
    for name in ("counts.csv", "proportions.csv"):
        assert (tmp_path / name).read_text() == (sample / name).read_text(), name

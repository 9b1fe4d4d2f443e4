#!/usr/bin/env python3
"""tools/svg_chart.py: the points land where their values say (linear and logarithmic axes),
repeated x values collapse to their median, and bad input is a clear error with no file written."""
import os
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "svg_chart.py")
SVG = "{http://www.w3.org/2000/svg}"


def run(folder, rows, *options):
    data = os.path.join(folder, "data.csv")
    with open(data, "w") as f:
        f.write("\n".join(rows) + "\n")
    out = os.path.join(folder, "chart.svg")
    result = subprocess.run([sys.executable, TOOL, data, "--out", out, *options], capture_output=True, text=True)
    return result, out


class SvgChart(unittest.TestCase):
    def test_points_follow_their_values_and_medians_collapse_repeats(self):
        with tempfile.TemporaryDirectory() as folder:
            rows = ["name,x,y", "a,1,10", "a,2,20", "a,2,40", "a,2,30", "a,4,40", "b,1,5", "b,4,15"]
            result, out = run(folder, rows, "--x", "x", "--y", "y", "--series", "name", "--median", "--title", "T & t")
            self.assertEqual(result.returncode, 0, result.stderr)
            root = ET.parse(out).getroot()
            circles = root.findall(f"{SVG}circle")
            self.assertEqual(len(circles), 5)  # a: x 1, 2 (median of three), 4; b: 1, 4
            self.assertEqual(len(root.findall(f"{SVG}polyline")), 2)
            legend = [t.text for t in root.findall(f"{SVG}text") if t.get("class") == "legend"]
            self.assertEqual(legend, ["a", "b"])
            a = [(float(c.get("cx")), float(c.get("cy"))) for c in circles[:3]]
            # Linear axes: equal steps in x are equal steps in pixels; larger y is higher up.
            self.assertAlmostEqual(a[1][0] - a[0][0], (a[2][0] - a[0][0]) / 3, places=0)
            self.assertGreater(a[0][1], a[1][1])
            # The median (30) sits halfway between 20 and 40 in pixels: between a's x=1 (10) and x=4 (40)
            self.assertAlmostEqual(a[1][1], a[0][1] + (a[2][1] - a[0][1]) * 2 / 3, places=0)

    def test_logarithmic_axis_puts_ten_halfway_between_one_and_a_hundred(self):
        with tempfile.TemporaryDirectory() as folder:
            result, out = run(folder, ["x,y", "1,1", "2,10", "3,100"], "--x", "x", "--y", "y", "--log-y",
                              "--hline", "50:baseline")
            self.assertEqual(result.returncode, 0, result.stderr)
            root = ET.parse(out).getroot()
            ys = [float(c.get("cy")) for c in root.findall(f"{SVG}circle")]
            self.assertAlmostEqual(ys[1], (ys[0] + ys[2]) / 2, places=0)
            reference = [l for l in root.findall(f"{SVG}line") if l.get("class") == "reference"]
            self.assertEqual(len(reference), 1)
            self.assertTrue(ys[2] < float(reference[0].get("y1")) < ys[1])

    def test_bad_input_is_a_clear_error_and_writes_nothing(self):
        with tempfile.TemporaryDirectory() as folder:
            for rows, options, message in [
                (["x,y", "1,2"], ("--x", "x", "--y", "speed"), "no column 'speed'"),
                (["x,y", "1,abc"], ("--x", "x", "--y", "y"), "not a number"),
                (["x,y"], ("--x", "x", "--y", "y"), "has no rows"),
                (["x,y", "1,0", "2,-1"], ("--x", "x", "--y", "y", "--log-y"), "logarithmic axis"),
                (["x,y", "1,5", "2,0"], ("--x", "x", "--y", "y", "--log-y"), "logarithmic axis"),
                (["x,y", "0,5", "2,7"], ("--x", "x", "--y", "y", "--log-x"), "logarithmic axis"),
            ]:
                result, out = run(folder, rows, *options)
                self.assertNotEqual(result.returncode, 0)
                self.assertIn(message, result.stderr)
                self.assertNotIn("Traceback", result.stderr)
                self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    unittest.main()

"""``python -m yolo_lessons.data check SOURCE``: every problem of a labelled set, before a run;
``python -m yolo_lessons.data convert VOC_ROOT OUT``: a Pascal VOC tree as Darknet's files (``data.voc``).

Examples::

    python -m yolo_lessons.data check my.data                 # its valid list (--split train for the other)
    python -m yolo_lessons.data check pictures/               # a folder: images/ and labels/ beside it
    python -m yolo_lessons.data check list.txt --names my.names
    python -m yolo_lessons.data convert VOCdevkit/VOC2007 voc07 --splits trainval test --names voc.names

Exit status: 0 when there is no error (pictures without labels are counted, not errors), 1 when
there are errors (each printed with its file and line), 2 for a bad option or a source that
cannot be read at all (no such file, an empty list, no names), with one line. ``convert`` checks
everything first and exits 2 with one line (the first problem, and how many more) on a missing
split, a malformed annotation, a missing picture or an output file that already exists, having
written nothing.
"""

from __future__ import annotations

import argparse
import sys

from .check import check_dataset
from .datasets import read_names
from .voc import voc_to_darknet


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m yolo_lessons.data",
        description="Check a labelled set in Darknet's format before training on it, or convert a VOC tree to it.",
        epilog=__doc__[__doc__.index("Examples::") : __doc__.index("Exit status")].replace("::", ":"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="list every problem with its file and line")
    check.add_argument("source", help="a .data file, a list file, or a folder of pictures")
    check.add_argument("--names", default=None, help="a .names file (default: the .data file's or the folder's)")
    check.add_argument("--split", default="valid", help="which list of a .data file: valid (default) or train")
    convert = commands.add_parser("convert", help="a Pascal VOC tree as Darknet's label, list, .names and .data files")
    convert.add_argument("voc_root", help="a VOC tree: Annotations/, JPEGImages/, ImageSets/Main/")
    convert.add_argument("out", help="the folder for the lists, the .names and the .data file")
    convert.add_argument("--splits", nargs="+", default=["train", "val"],
                         help="ImageSets/Main lists to convert (default: train val); .data: train = the first, "
                              "valid = the last")  # fmt: skip
    convert.add_argument("--names", default=None, help="a .names file (default: the names found, sorted)")
    convert.add_argument("--keep-difficult", action="store_true",
                         help="also write the difficult objects (voc_label.py leaves them out)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        names = read_names(args.names) if args.names is not None else None
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.command == "convert":
        try:
            done = voc_to_darknet(args.voc_root, args.out, names, args.splits, args.keep_difficult)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"wrote {done.label_files} label files ({done.objects} objects; left out: {done.difficult_skipped} "
              f"difficult, {done.other_classes_skipped} of other classes, {done.thin_skipped} one pixel wide), "
              f"{', '.join(str(p) for p in done.lists.values())}, {done.names_file} and {done.data_file}")  # fmt: skip
        return 0
    report = check_dataset(args.source, names, args.split)
    if report.unreadable:  # no such file, an empty list, no names: a bad argument, not a bad label
        print(f"error: {report.errors[0]}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

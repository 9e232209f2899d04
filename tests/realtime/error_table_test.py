"""docs/protocol.md lists the same errors as src/realtime/wire.hpp.

wire.hpp's error table is the one place the realtime layer names an error;
the "Errors" table of docs/protocol.md is what clients read. This test fails
when a row is added, removed, renamed or renumbered in one and not the other.
Usage: error_table_test.py WIRE_HPP PROTOCOL_MD
"""
import re
import sys
import unittest

WIRE, DOC = sys.argv[1], sys.argv[2]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def wire_rows():
    text = read(WIRE)
    rows = re.findall(r"inline constexpr error_def (\w+)\{\s*(\d+),", text)
    return [(name, int(code)) for name, code in rows]


def doc_rows():
    text = read(DOC)
    section = text[text.index("## Errors"):text.index("## Close codes")]
    rows = re.findall(r"^\| `(\w+)` \| (\d+) \|", section, re.MULTILINE)
    return [(name, int(code)) for name, code in rows]


class ErrorTable(unittest.TestCase):
    def test_same_rows_in_the_same_order(self):
        wire = wire_rows()
        self.assertGreater(len(wire), 20, "wire.hpp's table was not found")
        self.assertEqual(doc_rows(), wire)

    def test_every_code_is_explained(self):
        text = read(DOC)
        section = text[text.index("## Errors"):text.index("## Close codes")]
        explained = {int(c) for c in re.findall(r"^\| (\d{3}) \|", section, re.MULTILINE)}
        for name, code in wire_rows():
            self.assertIn(code, explained, f"{name}: code {code} has no meaning row")


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]])

import unittest

from helpers import front_end_url


class FrontEndUrl(unittest.TestCase):
    def test_names_the_instance(self) -> None:
        self.assertEqual(front_end_url("https://app.example.com/", "i-1"), "https://app.example.com/t/i-1")


if __name__ == "__main__":
    unittest.main()

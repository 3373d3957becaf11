"${{ outPath = { outPath = "deep"; }; }}"

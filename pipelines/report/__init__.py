"""The quarterly report: HTML (self-contained), PDF and XLSX from results.json and the warehouse."""

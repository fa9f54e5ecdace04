// Click a column header to sort its table (numbers by value, text alphabetically).
document.querySelectorAll("table.sortable th").forEach((th) => {
  th.addEventListener("click", () => {
    const column = th.cellIndex;
    const body = th.closest("table").tBodies[0];
    const value = (row) => row.cells[column].textContent.trim();
    const down = th.dataset.down !== "1";
    th.dataset.down = down ? "1" : "0";
    const rows = Array.from(body.rows).sort((a, b) => {
      const [x, y] = [value(a), value(b)];
      const order = isNaN(x) || isNaN(y) ? x.localeCompare(y) : x - y;
      return down ? -order : order;
    });
    rows.forEach((row) => body.appendChild(row));
  });
});

// Records of processing: the print button (a page script, as the content security policy wants).
document.getElementById("print-records").addEventListener("click", () => window.print());

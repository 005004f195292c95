// The console's progressive enhancement: every page works without it.
// - a form's submit button shows that work is under way (and cannot be
//   pressed twice);
// - the upload form takes a dropped file and shows the upload's progress.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const working = document.body.dataset.working || "…";

  for (const form of document.querySelectorAll("form")) {
    form.addEventListener("submit", () => {
      for (const button of form.querySelectorAll("button[data-busy]")) {
        button.disabled = true;
        button.textContent = working;
      }
    });
  }

  const upload = document.querySelector("form[data-upload]");
  if (!upload) return;
  const drop = upload.querySelector("[data-drop]");
  const input = upload.querySelector("input[type=file]");
  for (const kind of ["dragenter", "dragover"]) {
    drop.addEventListener(kind, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const kind of ["dragleave", "drop"]) {
    drop.addEventListener(kind, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) input.files = event.dataTransfer.files;
  });

  // Sent with XMLHttpRequest for its progress events; the answer (the
  // versions page with the validation result) replaces this one.
  upload.addEventListener("submit", (event) => {
    if (!window.XMLHttpRequest || !window.FormData) return;
    event.preventDefault();
    const bar = upload.querySelector("progress");
    const request = new XMLHttpRequest();
    request.open("POST", upload.action);
    request.upload.addEventListener("progress", (progress) => {
      if (!progress.lengthComputable) return;
      bar.hidden = false;
      bar.value = Math.round((progress.loaded / progress.total) * 100);
    });
    request.addEventListener("load", () => {
      document.open();
      document.write(request.responseText);
      document.close();
    });
    request.send(new FormData(upload));
  });
});

// Swagger UI for /api/docs, started from a file so that the page needs no inline script.
window.addEventListener("load", () => {
  const container = document.getElementById("swagger-ui-container");
  window.ui = SwaggerUIBundle({url: container.dataset.specUrl, dom_id: "#swagger-ui-container"});
});

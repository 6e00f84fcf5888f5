fetch("/api/v1/projects").catch(function () {});

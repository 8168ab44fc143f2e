// The media that is not the stream: the poster and the thumbnail sprite, fetched as blob URLs
// (released when playback stops), and stopping the video so that it fetches nothing more.
export function createMedia(player) {
  const { video } = player;
  let blobs = [];

  async function blobUrl(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) {
      const error = new Error(`HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    const objectUrl = URL.createObjectURL(await response.blob());
    if (player.ended) {
      URL.revokeObjectURL(objectUrl);
      throw new Error("ended");
    }
    blobs.push(objectUrl);
    return objectUrl;
  }

  async function loadPoster() {
    try {
      const url = await blobUrl(player.withView(player.data.posterUrl));
      if (!video.currentTime) video.poster = url;
    } catch (err) {
      if (err.status === 410) player.watch.poll();
    }
  }

  // Pause, drop the source and reload so the element fetches nothing more and frees what it
  // buffered; release the decrypted images too.
  function stop() {
    try {
      video.pause();
    } catch (err) {
      /* nothing to pause */
    }
    video.removeAttribute("src");
    video.removeAttribute("poster");
    video.load();
    blobs.forEach((url) => URL.revokeObjectURL(url));
    blobs = [];
  }

  return { blobUrl, loadPoster, stop };
}

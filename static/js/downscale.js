// Large photos are made smaller in the browser before upload: a 12 MP phone photo becomes a JPEG whose shorter
// side is the size the model decodes images to, so a mobile network does not carry megabytes for a 224 px answer.
// The server resizes the shorter side to that size anyway; sending exactly that keeps its answer.

const JPEG_QUALITY = 0.92;
// Files smaller than this go as they are: re-encoding them saves little and changes pixels for nothing.
const SMALL_FILE_BYTES = 256 * 1024;

// Upright, with the photo's own colour values: the server ignores colour profiles, so the browser must not apply
// them either, or the pixels the model sees would change.
const DECODE_OPTIONS = { imageOrientation: "from-image", colorSpaceConversion: "none" };

async function encodeJpeg(bitmap, width, height) {
  let resized = bitmap;
  try {
    resized = await createImageBitmap(bitmap, { resizeWidth: width, resizeHeight: height, resizeQuality: "high" });
  } catch {
    resized = bitmap; // drawImage below scales it instead
  }
  const canvas = typeof OffscreenCanvas === "function" ? new OffscreenCanvas(width, height)
    : Object.assign(document.createElement("canvas"), { width, height });
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff"; // transparent pixels become white, as the server makes them
  context.fillRect(0, 0, width, height);
  context.imageSmoothingQuality = "high";
  context.drawImage(resized, 0, 0, width, height);
  if (resized !== bitmap) resized.close();
  if (canvas.convertToBlob) return canvas.convertToBlob({ type: "image/jpeg", quality: JPEG_QUALITY });
  return new Promise((resolve) => { canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY); });
}

/**
 * The image to upload for `file` when a model decodes images to `shorterSide` pixels (their shorter side):
 * `{ blob, width, height, original: { width, height } }` with the shorter side exactly `shorterSide`, sizes
 * as a person sees the photo (EXIF orientation applied). Null means "send the file as it is": no size known,
 * the photo is already that small, the file is small anyway (SMALL_FILE_BYTES), the browser cannot decode it, or
 * the JPEG would not be smaller.
 */
export async function downscaleForUpload(file, shorterSide) {
  if (!(shorterSide > 0) || typeof createImageBitmap !== "function" || file.size < SMALL_FILE_BYTES) return null;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, DECODE_OPTIONS);
  } catch {
    return null;
  }
  try {
    const original = { width: bitmap.width, height: bitmap.height };
    const shorter = Math.min(original.width, original.height);
    if (shorterSide >= shorter) return null;
    const width = Math.max(1, Math.round((original.width * shorterSide) / shorter));
    const height = Math.max(1, Math.round((original.height * shorterSide) / shorter));
    const blob = await encodeJpeg(bitmap, width, height);
    if (!blob || blob.size >= file.size) return null;
    return { blob, width, height, original };
  } catch {
    return null;
  } finally {
    bitmap.close();
  }
}

/** The upload's file name: the original's with a .jpg extension. */
export function jpegName(name) {
  const base = (name || "photo").replace(/\.[^./]*$/, "");
  return `${base || "photo"}.jpg`;
}

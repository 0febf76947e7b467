// SVG files are bundled as strings (the builder's asset rule), for LabIcon.
declare module '*.svg' {
  const value: string;
  export default value;
}
